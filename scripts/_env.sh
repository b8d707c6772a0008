# Shared by scripts/serve, scripts/test and scripts/lock (sourced, not run).
# The installer, uv, lives in its own virtualenv (.tools/) so that syncing .venv to a lock never
# removes it; both are installed from the locks in requirements/ (see CONTRIBUTING.md).

# Where the CPU build of torch lies on our machines (PyPI's torch for Linux is the CUDA build).
TORCH_WHEELS=${TORCH_WHEELS:-/opt/wheels}

step() { printf '== %s\n' "$*"; }

ensure_uv() {
    local want
    want=$(sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements/bootstrap.txt)
    if [ "$(.tools/bin/uv --version 2>/dev/null)" != "uv $want" ]; then
        [ -x .tools/bin/python ] || "${PYTHON:-python3}" -m venv .tools
        # -qq: this machine's pip configuration warns about each extra index it has no copy of.
        .tools/bin/python -m pip install -qq --disable-pip-version-check --require-hashes \
            -r requirements/bootstrap.txt
    fi
}

# Make .venv exactly the lock $1 (adds, upgrades, downgrades and removes), then add the project.
sync_venv() {
    ensure_uv
    # A standard venv (with pip, so `.venv/bin/pip freeze` shows what the lock installed).
    [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
    .tools/bin/uv pip sync --quiet --python .venv/bin/python --require-hashes "$1"
    .tools/bin/uv pip install --quiet --python .venv/bin/python --no-deps \
        --build-constraints requirements/build.txt -e .
}
