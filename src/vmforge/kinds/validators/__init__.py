"""inVMValidations reuse the customizer kinds (Shell, PowerShell, File), registered for the validate phase in
their modules and run in a VM booted from the built image."""
