"""Every program answers --version with its name and the project's version
(CMakeLists.txt's project(... VERSION x.y.z)), and exits 0."""
import os
import re
import subprocess

import harness

PROGRAMS = ["renkei-broker", "renkei-agent", "renkei-sub", "renkei-replay", "renkei-keys",
            "renkei-gateway"]


def test(b):
    with open(os.path.join(harness.SOURCE, "CMakeLists.txt"), encoding="utf-8") as f:
        version = re.search(r"project\(renkei VERSION ([0-9.]+)", f.read()).group(1)
    for name in PROGRAMS:
        p = subprocess.run([harness.tool(name), "--version"], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0 and p.stdout == f"{name} {version}\n", (name, p)
        h = subprocess.run([harness.tool(name), "--help"], capture_output=True, text=True,
                           timeout=30)
        assert "--version" in h.stdout, (name, "--help does not list --version")


harness.run(test)
