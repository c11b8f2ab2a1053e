"""System monitoring (psutil sampling) and alert rules."""
