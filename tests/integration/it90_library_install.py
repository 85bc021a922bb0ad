"""The client library as another team would use it: `cmake --install` into
a fresh prefix, the example program compiled with nothing but
`pkg-config --cflags --libs renkei`, and run against a real broker: its
callback publishes, its blocking publish and its replay must all work."""
import os
import subprocess

import harness


def test(b):
    build = os.environ["RK_BUILD_DIR"]
    prefix = os.path.join(b.dir, "prefix")
    subprocess.run(["cmake", "--install", build, "--prefix", prefix], check=True,
                   capture_output=True, timeout=120)
    for f in ("lib/librenkei.a", "lib/pkgconfig/renkei.pc", "include/renkei/rk_pub.h",
              "bin/renkei-agent", "sbin/renkei-broker"):
        assert os.path.exists(os.path.join(prefix, f)), f

    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "renkei"], env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    assert any(f.startswith("-I") and f.endswith("include/renkei") for f in flags), flags
    # A sanitizer build installs instrumented archives: link the runtime too.
    san = ["-fsanitize=address,undefined"] if os.environ.get("RK_SANITIZE") == "ON" else []
    exe = os.path.join(b.dir, "publish_and_read")
    src = os.path.join(harness.SOURCE, "agents", "examples", "publish_and_read.c")
    p = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", *san, src, *flags,
                        "-o", exe], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr

    b.start()
    p = subprocess.run([exe, b.ingest, b.replay, "271004"], capture_output=True, text=True,
                       timeout=60)
    harness.check_clean("example", p.stderr)
    assert p.returncode == 0, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert lines[:4] == [f"published {i}: stored seq {i + 1}" for i in range(4)], lines
    assert [l.split(",")[0] for l in lines[4:]] == [f"read seq {i}" for i in range(1, 5)], lines
    stored, _ = b.replay_all()
    assert [e["event"]["kpi_id"] for e in stored] == ["KPI-271004-900"] * 4, stored


harness.run(test)
