"""What to ask the API for: one class per replication mode (modes.py), planned per run."""
