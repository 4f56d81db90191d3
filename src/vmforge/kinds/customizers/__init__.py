"""Customizers (and the validators that share their code): Shell, File, PowerShell, WindowsRestart,
WindowsUpdate."""
