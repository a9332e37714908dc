"""Hypervisor access: libvirt connections (local and remote URIs), domains, platform checks.

All libvirt-specific code lives under this package, so hypervisor differences stay in one place.
"""
