"""Small utilities every layer may use: atomic file writes, timing, CPU devices for chains.

Free of heavy imports (no JAX at import time), so the command line can use them before JAX starts.
"""

from bayestumor.utils._atomic import atomic_directory as atomic_directory
from bayestumor.utils._atomic import atomic_path as atomic_path
from bayestumor.utils._devices import use_cpu_cores_for_chains as use_cpu_cores_for_chains
from bayestumor.utils._hashing import sha256_file as sha256_file
from bayestumor.utils._timing import median_seconds as median_seconds
