"""mail-lab: build real networks with Mininet, deploy real mail/DNS/DHCP daemons,
run scripted scenarios and report what happened."""

import os
import sys

# Mininet's node module imports distutils.version.  setuptools' .pth hook, installed at
# interpreter start unless SETUPTOOLS_USE_DISTUTILS=stdlib, answers that import with its
# own copy and pkg_resources: 0.18 s at every start of the lab.  The standard library's
# distutils is enough: the hook leaves this process (and, by the variable, its children).
os.environ.setdefault("SETUPTOOLS_USE_DISTUTILS", "stdlib")
if "distutils" not in sys.modules:
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__module__ != "_distutils_hack"]

__version__ = "0.1.0"
