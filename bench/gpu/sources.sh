#!/usr/bin/env bash
# One fingerprint of the sources a prepared build is made of (src, runtime, bench, grammar): prepare.sh
# records it in the package, run.sh compares it with the tree it runs in. find + sha256sum: no git needed.
cd "$(dirname "$0")/../.." && find src runtime bench grammar -type f ! -name '*.pyc' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16
