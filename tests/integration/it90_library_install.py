"""The client library as another team would use it.

`cmake --install` into a fresh prefix gives one header (renkei.h, and the
rk_err.h it includes), librenkei.a and librenkei.so.0; the shared library
exports exactly the functions the header declares, and the header holds no
tool helpers (getopt tables). The example program, compiled with nothing
but pkg-config's flags, is linked once against the shared library and once
against the archive (pkg-config --static); each publishes to a real broker
(callbacks and the blocking publish) and reads its events back.

Then the broker speaks CURVE with an ACL in which a town's key may publish
but not read and an auditor's may read but not publish: the example, with
its publisher on the town's key and its reader on the auditor's in one
process, works only if each object uses its own key."""
import os
import re
import subprocess

import harness

SAN = ["-fsanitize=address,undefined"] if os.environ.get("RK_SANITIZE") == "ON" else []


def sh(*cmd, env=None):
    p = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (cmd, p.stdout, p.stderr)
    return p.stdout


def install(b):
    prefix = os.path.join(b.dir, "prefix")
    sh("cmake", "--install", os.environ["RK_BUILD_DIR"], "--prefix", prefix)
    lib, inc = os.path.join(prefix, "lib"), os.path.join(prefix, "include", "renkei")
    for f in ("lib/librenkei.a", "lib/librenkei.so", "lib/pkgconfig/renkei.pc",
              "bin/renkei-agent", "sbin/renkei-broker"):
        assert os.path.exists(os.path.join(prefix, f)), f
    assert sorted(os.listdir(inc)) == ["renkei.h", "rk_err.h"], os.listdir(inc)
    libs = sorted(f for f in os.listdir(lib) if f.startswith("lib"))
    assert libs == ["librenkei.a", "librenkei.so", "librenkei.so.0", "librenkei.so.0.1.0"], libs
    assert os.readlink(os.path.join(lib, "librenkei.so.0")) == "librenkei.so.0.1.0"
    return prefix, lib, inc


def check_header(b, inc, lib):
    with open(os.path.join(inc, "renkei.h")) as f:
        header = f.read()
    for word in ("getopt", "required_argument", "LONGOPTS", "_HELP", "rk_wire", "RK_WIRE"):
        assert word not in header, f"renkei.h holds {word}"
    src = os.path.join(b.dir, "alone.c")
    with open(src, "w") as f:
        f.write("#include <renkei.h>\nint main(void) { return rk_strerror(RK_OK) == 0; }\n")
    sh("cc", "-std=c11", "-pedantic", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
       "-I" + inc, src)
    with open(os.path.join(inc, "rk_err.h")) as f:
        declared = set(re.findall(r"^[a-z][\w ]*?[\s*](rk_\w+)\(", header + f.read(), re.M))
    syms = sh("readelf", "--dyn-syms", "-W", os.path.join(lib, "librenkei.so.0"))
    fields = [l.split() for l in syms.splitlines()]  # Num Value Size Type Bind Vis Ndx Name
    exported = {f[7].split("@")[0] for f in fields
                if len(f) >= 8 and f[3] == "FUNC" and f[4] == "GLOBAL" and f[6] != "UND"}
    assert exported == declared, (f"exported, not in renkei.h: {sorted(exported - declared)}; "
                                  f"in renkei.h, not exported: {sorted(declared - exported)}")


def build(b, prefix, how):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
    pc = lambda *a: sh("pkg-config", *a, env=env).split()
    cflags = pc("--cflags", "renkei", "msgpack")
    assert any(f.startswith("-I") and f.endswith("include/renkei") for f in cflags), cflags
    if how == "shared":
        libs = pc("--libs", "renkei", "msgpack")
    else:
        # pkg-config names the library; the linker would take the .so beside it.
        libs = [("-l:librenkei.a" if f == "-lrenkei" else f) for f in pc("--static", "--libs", "renkei")]
        assert "-l:librenkei.a" in libs and "-lzmq" in libs, libs
        libs += pc("--libs", "msgpack")
    exe = os.path.join(b.dir, f"publish_and_read_{how}")
    src = os.path.join(harness.SOURCE, "agents", "examples", "publish_and_read.c")
    sh("cc", "-std=c11", "-Wall", "-Wextra", "-Werror", *SAN, src, *cflags, *libs, "-o", exe)
    needed = re.findall(r"\(NEEDED\).*\[(.*)\]", sh("readelf", "-d", exe))
    if how == "shared":
        assert "librenkei.so.0" in needed, needed
    else:
        assert not any(n.startswith("librenkei") for n in needed), needed
    return exe


def run(b, exe, first_seq, *keys, lib=None, want_rc=0):
    env = dict(os.environ, LD_LIBRARY_PATH=lib) if lib else None
    if lib:
        resolved = sh("ldd", exe, env=env)
        assert re.search(r"librenkei\.so\.0 => " + re.escape(lib) + r"/librenkei\.so\.0 ",
                         resolved), resolved
    p = subprocess.run([exe, b.ingest, b.replay, "271004", *keys], env=env,
                       capture_output=True, text=True, timeout=60)
    harness.check_clean(os.path.basename(exe), p.stderr)
    assert p.returncode == want_rc, (p.returncode, p.stdout, p.stderr)
    if want_rc:
        return p.stderr
    lines = p.stdout.splitlines()
    assert lines[:4] == [f"published {i}: stored seq {first_seq + i}" for i in range(4)], lines
    assert [l.split(",")[0] for l in lines[4:]] == [f"read seq {first_seq + i}" for i in range(4)], lines
    return p.stderr


def keys(d, name):
    return sh(harness.tool("renkei-keys"), "--dir", d, name).strip()


def test(b):
    prefix, lib, inc = install(b)
    check_header(b, inc, lib)
    shared, static = build(b, prefix, "shared"), build(b, prefix, "static")

    b.start()
    run(b, shared, 1, lib=lib)
    run(b, static, 5)
    stored, _ = b.replay_all()
    assert [e["event"]["kpi_id"] for e in stored] == ["KPI-271004-900"] * 8, stored

    pubs = {n: keys(b.dir, n) for n in ("broker", "town", "auditor")}
    acl = os.path.join(b.dir, "acl.ini")
    with open(acl, "w") as f:
        f.write(f"[tenant town]\nkey = {pubs['town']}\npublish = 271004\n\n"
                f"[tenant auditor]\nkey = {pubs['auditor']}\nreplay = *\n")
    b.stop()
    b.extra = ["--curve-key", os.path.join(b.dir, "broker.key"), "--acl", acl]
    b.start()
    key = lambda n: os.path.join(b.dir, n)
    run(b, shared, 9, key("broker.pub"), key("town.key"), key("auditor.key"), lib=lib)
    # Swapped, each object is refused what its key may not do.
    err = run(b, static, 0, key("broker.pub"), key("auditor.key"), key("town.key"), want_rc=1)
    assert "E_FORBIDDEN" in err, err
    stored, _ = b.replay_all("--broker-key", key("broker.pub"), "--key", key("auditor.key"))
    assert [e["seq"] for e in stored] == list(range(1, 13)), stored
    assert [e.get("publisher", "") for e in stored[8:]] == [pubs["town"]] * 4, stored[8:]


harness.run(test)
