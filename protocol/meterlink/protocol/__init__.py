"""meterlink part."""
