"""Rewrite pyproject.toml's "mypy debt" block: for each module, the error codes mypy still reports.

    python3 scripts/mypy_debt.py            # from scratch: after fixing errors, the list shrinks
    python3 scripts/mypy_debt.py --keep     # add what the current block itself causes (unused ignores)

Run both after fixing types; commit only a shorter list. New code should not need an entry.
"""

import collections
import pathlib
import re
import subprocess
import sys

root = pathlib.Path(__file__).resolve().parents[1]
py = root / "pyproject.toml"
text = py.read_text()
BEGIN, END = "# --- mypy debt: begin (scripts/mypy_debt.py writes this from mypy's output; shrink it, never grow it)\n", "# --- mypy debt: end\n"
codes = collections.defaultdict(set)
if "--keep" in sys.argv and BEGIN in text:
    block = text[text.index(BEGIN) : text.index(END)]
    for module, disabled in re.findall(r'module = "([^"]+)"\ndisable_error_code = \[([^\]]*)\]', block):
        codes[module] |= set(re.findall(r'"([a-z-]+)"', disabled))
if "--keep" in sys.argv:
    out = subprocess.run(["mypy"], cwd=root, capture_output=True, text=True).stdout
if BEGIN in text:
    # drop the block with the blank lines around it, so that reinserting it below (one blank line above, one
    # below) gives back the same file: reruns must not pile up blank lines
    text = text[: text.index(BEGIN)].rstrip("\n") + "\n\n" + text[text.index(END) + len(END) :].lstrip("\n")
    py.write_text(text)
if "--keep" not in sys.argv:
    out = subprocess.run(["mypy"], cwd=root, capture_output=True, text=True).stdout
for line in out.splitlines():
    m = re.match(r"^([\w/]+)\.py:\d+: error: .*\[([a-z-]+)\]$", line)
    if m:
        module = m.group(1).replace("/", ".").removesuffix(".__init__")
        codes[module].add(m.group(2))
blocks = [BEGIN]
for module in sorted(codes):
    blocks.append(
        f'[[tool.mypy.overrides]]\nmodule = "{module}"\ndisable_error_code = [{", ".join(repr(c).replace(chr(39), chr(34)) for c in sorted(codes[module]))}]\n\n'
    )
blocks.append(END)
anchor = "[tool.pytest.ini_options]"
text = text.replace(anchor, "".join(blocks) + "\n" + anchor, 1)
py.write_text(text)
print(len(codes), "modules,", sum(len(v) for v in codes.values()), "codes")
