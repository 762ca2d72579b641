#!/usr/bin/env python3
"""Build step: turn profiles/*.json into a C file of built-in provider profiles."""
import json
import os
import sys

out = sys.argv[1]
rows = []
for path in sys.argv[2:]:
    text = open(path, encoding="utf-8").read()
    json.loads(text)  # a broken built-in must fail the build, not the mount
    name = os.path.splitext(os.path.basename(path))[0]
    rows.append((name, json.dumps(text)))
with open(out, "w", encoding="utf-8") as f:
    f.write("/* Generated from the files in profiles/ by scripts/embed-profiles.py. */\n")
    f.write('#include "provider.h"\n\n')
    f.write("const struct provider_builtin provider_builtins[] = {\n")
    for name, text in rows:
        f.write(f'    {{"{name}", {text}}},\n')
    f.write("    {0, 0},\n};\n")
