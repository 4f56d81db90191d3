"""HTTP layer: thin routes that parse, call a service and render ARM JSON."""
