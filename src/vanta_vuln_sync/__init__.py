"""vanta-vuln-sync: Vanta vulnerability data, synced into your AWS account and turned into statistics."""

__version__ = "0.1.0"
