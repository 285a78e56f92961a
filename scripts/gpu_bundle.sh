#!/usr/bin/env bash
# Pack what `stylebot bench gpu` needs on a GPU machine that has Python 3.12 and PyTorch but
# neither stylebot's other packages nor a Redis server (the project's lent device machine).
#
#   scripts/gpu_bundle.sh            # here: writes .device/ (git-ignored), about 40 MB
#   # there, from the repo root, with .device carried along:
#   bash .device/run.sh [bench gpu options…]
#
# Wheels come from the package index for CPython 3.12 on manylinux x86-64, with their
# dependencies, minus the packages that machine already has (torch and its CUDA libraries,
# numpy, Pillow, transformers, …; see the device tool's KINDS.md); redis-server comes from
# this machine with the shared libraries it links against.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.device
rm -rf "$out" && mkdir -p "$out/whl" "$out/redis"
exclude=$(git rev-parse --git-path info/exclude); mkdir -p "$(dirname "$exclude")"
grep -qx '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >> "$exclude"

python3 -m pip download --quiet --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
  -d "$out/whl" \
  'celery[redis]>=5.5,<5.8' 'sqlmodel>=0.0.22' 'SQLAlchemy>=2.0.36' 'alembic>=1.14' \
  'pydantic-settings>=2.6' 'babel>=2.14' 'diffusers>=0.35,<0.43' 'psycopg[binary]>=3.2' \
  'torchao>=0.14,<0.19'

# Already on the device machine (its image's package list): carrying them would shadow it.
for have in torch nvidia triton numpy pillow transformers tokenizers huggingface_hub \
    safetensors requests urllib3 idna certifi charset_normalizer filelock fsspec regex \
    packaging pyyaml PyYAML tqdm typing_extensions jinja2 MarkupSafe markupsafe sympy mpmath \
    networkx click six python_dateutil hf_xet httpx httpcore h11 anyio sniffio zipp \
    opencv_python_headless; do
  rm -f "$out/whl/${have}"-[0-9]*.whl
done

bin=$(command -v redis-server)
cp "$bin" "$out/redis/"
ldd "$bin" | awk '/=> \//{print $3}' | grep -v -e '/libc\.so' -e '/libm\.so' -e 'ld-linux' \
  | xargs -I{} cp -L {} "$out/redis/"

cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# On the GPU machine, from the repo root: install the carried wheels, start Redis, run the bench.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  .device/whl/*.whl
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1
LD_LIBRARY_PATH="$PWD/.device/redis" .device/redis/redis-server --port 6379 --save '' \
  --appendonly no --daemonize yes
for _ in $(seq 50); do python3 -c 'import redis; redis.Redis().ping()' 2>/dev/null && break; sleep 0.1; done
python3 -m bench.gpu --database-url sqlite:// "$@"
RUN
chmod +x "$out/run.sh"
du -sh "$out" && ls "$out/whl" | wc -l
