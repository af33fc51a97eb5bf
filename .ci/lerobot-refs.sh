#!/usr/bin/env bash
# Build once, or reuse, the reference LeRobot clients that the compatibility tests (marker `compat`)
# run, and print the variables that point the tests at them:
#   SO101LAB_LEROBOT_REF    LeRobot 0.4.4 on Python 3.11 (+ the Feetech vendor SDK)
#   SO101LAB_LEROBOT06_REF  LeRobot 0.6.1 on Python 3.12, with so101lab and its LeRobot env plugin
# Usage (from the repository root): refs=$(bash .ci/lerobot-refs.sh) && eval "$refs"
# The venvs live outside the clone, where /work/shared/tools/setup-lerobot*-ref.sh put them
# (~/.cache/lerobot-ref, ~/.cache/lerobot-ref-061; LEROBOT_REF_VENV / LEROBOT06_REF_VENV override):
# ~5 minutes and ~8 + 6 GB each the first time on a fresh machine, seconds when cached. Neither is
# ever a dependency of so101lab. Python 3.12: $PY312, else one under pyenv, else python3.12 on PATH.
set -euo pipefail
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}
REF=${LEROBOT_REF_VENV:-$CACHE/lerobot-ref}
REF06=${LEROBOT06_REF_VENV:-$CACHE/lerobot-ref-061}
log() { echo "[lerobot-refs] $*" >&2; }
pip_q() { "$@" -q 2>&1 | grep -v "^WARNING: Location" >&2 || true; }

if ! "$REF/bin/python" -c "import lerobot, scservo_sdk" 2>/dev/null; then
  log "building LeRobot 0.4.4 in $REF (about 5 minutes)"
  rm -rf "$REF" && mkdir -p "$(dirname "$REF")"
  "${PY311:-python3}" -m venv "$REF"
  pip_q "$REF/bin/pip" install torch==2.9.1 torchvision==0.24.1
  pip_q "$REF/bin/pip" install "lerobot[smolvla,feetech]==0.4.4" torch==2.9.1 torchvision==0.24.1
fi
"$REF/bin/python" -c "import lerobot, scservo_sdk" || { log "LeRobot 0.4.4 did not install in $REF"; exit 1; }

if ! "$REF06/bin/python" -c "import lerobot, scservo_sdk, grpc, diffusers" 2>/dev/null; then
  PY312=${PY312:-$(ls "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null | head -1 || true)}
  if [ -z "$PY312" ] && python3.12 -c "" 2>/dev/null; then PY312=$(command -v python3.12); fi
  if [ ! -x "$REF06/bin/python" ]; then
    [ -n "$PY312" ] && [ -x "$PY312" ] || { log "no Python 3.12 found for LeRobot 0.6.1 (set PY312)"; exit 1; }
    log "building LeRobot 0.6.1 in $REF06 with $PY312 (about 5 minutes)"
    mkdir -p "$(dirname "$REF06")" && "$PY312" -m venv "$REF06"
  fi
  # diffusion: the compat tests train a tiny Diffusion Policy too.
  pip_q "$REF06/bin/pip" install "lerobot[smolvla,feetech,dataset,async,diffusion]==0.6.1"
fi
"$REF06/bin/python" -c "import lerobot, scservo_sdk, grpc, diffusers" || { log "LeRobot 0.6.1 did not install"; exit 1; }

# This checkout's so101lab and its LeRobot plugins (env, robot), installed (not editable: the clone may go) beside LeRobot
# 0.6.1 as a user would (docs/lerobot.md), replacing what an earlier run installed there.
log "installing so101lab and plugins/lerobot_{env,robot}_so101lab into $REF06"
WHEELS=$(mktemp -d) && trap 'rm -rf "$WHEELS"' EXIT
pip_q "$REF06/bin/pip" wheel --no-deps -w "$WHEELS" . ./plugins/lerobot_env_so101lab ./plugins/lerobot_robot_so101lab
pip_q "$REF06/bin/pip" install --force-reinstall --no-deps "$WHEELS"/*.whl
pip_q "$REF06/bin/pip" install "$WHEELS"/*.whl   # so101lab's own dependencies, if new
"$REF06/bin/python" -c "import so101lab, lerobot_env_so101lab, lerobot_robot_so101lab" || { log "so101lab did not install"; exit 1; }

echo "export SO101LAB_LEROBOT_REF=$REF/bin/python"
echo "export SO101LAB_LEROBOT06_REF=$REF06/bin/python"
