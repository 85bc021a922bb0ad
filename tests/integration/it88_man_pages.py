"""The man pages (deploy/man) render without a groff warning and stay in
step with the programs: every long option a program's --help lists is in
its page, and renkei.conf(5) names every key of renkei-broker's table."""
import os
import re
import subprocess

import harness

PAGES = {"renkei-broker": "renkei-broker.8", "renkei-agent": "renkei-agent.1",
         "renkei-sub": "renkei-sub.1", "renkei-replay": "renkei-replay.1",
         "renkei-keys": "renkei-keys.1", "renkei-gateway": "renkei-gateway.8"}


def render(page):
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-P-c", "-P-b", "-P-u",
                        os.path.join(harness.SOURCE, "deploy", "man", page)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and not p.stderr.strip(), (page, p.stderr)
    return p.stdout.replace("\u2010", "-").replace("\u2212", "-")


def test(b):
    for tool, page in PAGES.items():
        text = render(page)
        help_text = subprocess.run([harness.tool(tool), "--help"], capture_output=True,
                                   text=True, timeout=30, check=True).stdout
        options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text))
        assert options, tool
        missing = sorted(o for o in options
                         if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text))
        assert not missing, f"{page} lacks {missing}"
    conf = render("renkei.conf.5")
    help_text = subprocess.run([harness.tool("renkei-broker"), "--help"], capture_output=True,
                               text=True, timeout=30, check=True).stdout
    keys = re.search(r"\[broker\] (.*)", help_text).group(1).split()
    assert len(keys) >= 10, keys
    missing = [k for k in keys if not re.search(rf"\b{k}\b", conf)]
    assert not missing, f"renkei.conf.5 lacks {missing}"


harness.run(test)
