"""mail-lab: build real networks with Mininet, deploy real mail/DNS/DHCP daemons,
run scripted scenarios and report what happened."""

__version__ = "0.1.0"
