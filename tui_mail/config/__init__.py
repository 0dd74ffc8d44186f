"""Loading and validating the TOML config."""
