"""The backup, retention and restore-drill scripts, run under bash (and busybox sh, the shell of
the Alpine images they run in) against recording stubs of ssh, rsync, pg_dump, pg_restore, psql
and sqlite3. The ssh and rsync stubs act on a local directory that plays the NAS, so retention
really deletes and copies really land; every call is logged with its arguments.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tools import mockrun

SCRIPTS = Path(__file__).resolve().parent.parent / "components" / "scripts"
NAS = "192.168.1.60"
USER = "k3s-backup"

STUB_HEADER = """#!/bin/sh
name=${0##*/}
{ printf '%s' "$name"; for a in "$@"; do printf '\\t%s' "$a"; done; printf '\\n'; } >>"$CALLS"
case " ${STUB_FAIL:-} " in *" $name "*) echo "$name: stub failure" >&2; exit 3 ;; esac
"""

STUBS = {
    # Options, then user@host, then the remote command, which runs here (the "NAS" is local).
    "ssh": """
while [ "$#" -gt 0 ]; do
  case "$1" in
    -i|-p|-o) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
shift
exec sh -c "$*"
""",
    # rsync -a [-e CMD] [--delete] SRC DST, with host: prefixes stripped.
    "rsync": """
src= dst=
while [ "$#" -gt 0 ]; do
  case "$1" in
    -e) shift 2 ;;
    -*) shift ;;
    *) if [ -z "$src" ]; then src=$1; else dst=$1; fi; shift ;;
  esac
done
src=${src#*@*:}
dst=${dst#*@*:}
case "$src" in
  */) mkdir -p "$dst" && cp -a "$src". "$dst" ;;
  *) mkdir -p "$(dirname "$dst")" && cp -a "$src" "$dst" ;;
esac
""",
    "pg_dump": """
if [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) ${STUB_PG_MAJOR:-14}.17"; exit 0; fi
while [ "$#" -gt 0 ]; do
  if [ "$1" = "-f" ]; then printf 'PGDMP stub' >"$2"; fi
  shift
done
""",
    "pg_restore": "exit 0\n",
    "psql": """
case "$*" in
  *server_version_num*) echo "${STUB_SERVER_NUM:-140017}" ;;
  *"count(*)"*) echo "${STUB_ROWS:-42}" ;;
esac
""",
    "sqlite3": """
for a in "$@"; do db=$a; [ -f "$a" ] && break; done
if grep -q CORRUPT "$db"; then echo "*** in database main *** Page 3: btree corrupt"; else echo ok; fi
""",
}


@dataclass
class Run:
    code: int
    out: str
    calls: list[list[str]]

    def of(self, name: str) -> list[list[str]]:
        return [c[1:] for c in self.calls if c[0] == name]


SHELLS = [pytest.param(["bash"], id="bash"), pytest.param(["busybox", "sh"], id="busybox-sh")]


@pytest.fixture(params=SHELLS)
def shell(request: pytest.FixtureRequest) -> list[str]:
    if request.param[0] == "busybox":
        require_tool("busybox")
    return list(request.param)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Stub bin dir first on PATH, an SSH key, a known_hosts entry and a local "NAS"."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STUBS.items():
        stub = bin_dir / name
        stub.write_text(STUB_HEADER + body)
        stub.chmod(0o755)
    (tmp_path / "id").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nstand-in\n")
    (tmp_path / "known_hosts").write_text(f"{NAS} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIstand\n")
    (tmp_path / "nas").mkdir()
    (tmp_path / "work").mkdir()
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CALLS": str(tmp_path / "calls.log"),
        "NAS_HOST": NAS,
        "NAS_USER": USER,
        "NAS_PORT": "22",
        "SSH_KEY": str(tmp_path / "id"),
        "KNOWN_HOSTS": str(tmp_path / "known_hosts"),
        "SCRIPTS_DIR": str(SCRIPTS),
        "BACKUP_DATE": "2026-11-29",
        "TMPDIR": str(tmp_path),
    }


def run(shell: list[str], script: str, env: dict[str, str], **extra: str) -> Run:
    proc = subprocess.run(
        [*shell, str(SCRIPTS / script)],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
    )
    log = Path(env["CALLS"])
    calls = [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []
    log.unlink(missing_ok=True)
    return Run(proc.returncode, proc.stdout + proc.stderr, calls)


def assert_host_key_checked(result: Run, env: dict[str, str]) -> None:
    """Every ssh (direct or as rsync's transport) checks the NAS key against known_hosts."""
    ssh_lines = [" ".join(c) for c in result.of("ssh")]
    ssh_lines += [c[c.index("-e") + 1] for c in result.of("rsync")]
    assert ssh_lines
    for line in ssh_lines:
        assert "StrictHostKeyChecking=yes" in line
        assert f"UserKnownHostsFile={env['KNOWN_HOSTS']}" in line
        assert "BatchMode=yes" in line
        assert "StrictHostKeyChecking=no" not in line
    for call in result.of("ssh"):
        assert f"{USER}@{NAS}" in call


# -- retention -----------------------------------------------------------------------------

DATED = ["2026-10-11", "2026-10-18", "2026-10-25", "2026-11-01", "2026-11-08", "2026-11-15", "2026-11-22"]
OTHERS = ["unrelated", "2026-13-01", "2026-1-5", "2026-11-22-old", "postgres"]


def make_backup_tree(root: Path) -> None:
    for name in DATED + OTHERS:
        (root / name).mkdir(parents=True)
        (root / name / "data").write_text(name)
    (root / "2026-01-01").write_text("a file with a date name is not a backup folder")


def test_retention_keeps_newest_n_and_everything_else(shell: list[str], env: dict, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    make_backup_tree(root)
    result = run(shell, "retention.sh", env, BACKUP_ROOT=str(root), KEEP="3")
    assert result.code == 0, result.out
    left = sorted(p.name for p in root.iterdir())
    assert left == sorted(DATED[-3:] + OTHERS + ["2026-01-01"])
    assert (root / "unrelated" / "data").read_text() == "unrelated"


def test_retention_with_fewer_folders_than_n_removes_nothing(shell: list, env: dict, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    make_backup_tree(root)
    assert run(shell, "retention.sh", env, BACKUP_ROOT=str(root), KEEP="30").code == 0
    assert len(list(root.iterdir())) == len(DATED + OTHERS) + 1


@pytest.mark.parametrize("keep", ["0", "-1", "two", ""])
def test_retention_refuses_a_bad_count(shell: list, env: dict, tmp_path: Path, keep: str) -> None:
    root = tmp_path / "backups"
    make_backup_tree(root)
    result = run(shell, "retention.sh", env, BACKUP_ROOT=str(root), KEEP=keep)
    assert result.code != 0
    assert len(list(root.iterdir())) == len(DATED + OTHERS) + 1


def test_retention_fails_on_a_missing_root(shell: list, env: dict, tmp_path: Path) -> None:
    assert run(shell, "retention.sh", env, BACKUP_ROOT=str(tmp_path / "absent"), KEEP="2").code == 1


# -- pvc-backup ------------------------------------------------------------------------------


def cronjob_env(pi_k3s: mockrun.Result, name: str, container: str) -> dict[str, str]:
    spec = pi_k3s.manifest("CronJob", name, "backup-jobs")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for c in spec.get("initContainers", []) + spec["containers"]:
        if c["name"] == container:
            return {e["name"]: e["value"] for e in c["env"] if "value" in e}
    raise KeyError(container)


@pytest.fixture
def pvc_env(pi_k3s: mockrun.Result, env: dict, tmp_path: Path) -> dict[str, str]:
    """The pvc-backup container's environment from the stack, with paths moved to tmp."""
    stack_env = cronjob_env(pi_k3s, "pvc-backup", "pvc-backup")
    storage = tmp_path / "storage"
    for i, volume in enumerate(stack_env["VOLUMES"].split()):
        d = storage / f"pvc-{i:04d}_{volume}"
        d.mkdir(parents=True)
        (d / "payload").write_text(volume)
    (storage / "pvc-9999_other_not-declared").mkdir()
    base = tmp_path / "nas" / "volumes"
    for day in DATED:
        (base / day).mkdir(parents=True)
    (base / "unrelated").mkdir()
    return {
        **env,
        **stack_env,
        **{k: env[k] for k in ("SSH_KEY", "KNOWN_HOSTS", "SCRIPTS_DIR", "NAS_PORT")},
    } | {
        "STORAGE_ROOT": str(storage),
        "NAS_BASE": str(base),
        "RETENTION": "2",
    }


def test_pvc_backup_copies_each_declared_volume_then_prunes(shell: list, pvc_env: dict) -> None:
    result = run(shell, "pvc-backup.sh", pvc_env)
    assert result.code == 0, result.out
    base = Path(pvc_env["NAS_BASE"])
    volumes = pvc_env["VOLUMES"].split()
    today = base / "2026-11-29"
    assert sorted(p.name for p in today.iterdir()) == sorted(volumes)
    for v in volumes:
        assert (today / v / "payload").read_text() == v
    assert not (today / "other_not-declared").exists()
    assert sorted(p.name for p in base.iterdir()) == ["2026-11-22", "2026-11-29", "unrelated"]
    assert_host_key_checked(result, pvc_env)
    rsyncs = result.of("rsync")
    assert [c[-1] for c in rsyncs] == [f"{USER}@{NAS}:{base}/2026-11-29/{v}/" for v in volumes]
    assert all("--delete" in c and "-a" in c for c in rsyncs)
    ssh_commands = [" ".join(c) for c in result.of("ssh")]
    assert any(f"mkdir -p -- {base}/2026-11-29" in c for c in ssh_commands)
    assert any(f"BACKUP_ROOT='{base}' KEEP='2' sh -s" in c for c in ssh_commands)


def test_pvc_backup_fails_when_a_volume_is_missing(shell: list, pvc_env: dict) -> None:
    first = pvc_env["VOLUMES"].split()[0]
    shutil.rmtree(next(Path(pvc_env["STORAGE_ROOT"]).glob(f"*_{first}")))
    result = run(shell, "pvc-backup.sh", pvc_env)
    assert result.code != 0
    assert first in result.out
    assert not any("sh -s" in " ".join(c) for c in result.of("ssh")), "retention must not run"


@pytest.mark.parametrize("failing", ["rsync", "ssh"])
def test_pvc_backup_fails_when_a_step_fails(shell: list, pvc_env: dict, failing: str) -> None:
    result = run(shell, "pvc-backup.sh", pvc_env, STUB_FAIL=failing)
    assert result.code != 0
    left = {p.name for p in Path(pvc_env["NAS_BASE"]).iterdir()}
    assert set(DATED) <= left, "a failed backup prunes nothing"


def test_pvc_backup_refuses_to_run_without_known_hosts(shell: list, pvc_env: dict) -> None:
    Path(pvc_env["KNOWN_HOSTS"]).write_text("")
    result = run(shell, "pvc-backup.sh", pvc_env)
    assert result.code != 0
    assert "known_hosts" in result.out
    assert result.of("ssh") == [] and result.of("rsync") == []


# -- postgres-backup -------------------------------------------------------------------------


@pytest.fixture
def pg_env(env: dict) -> dict[str, str]:
    return {
        **env,
        "PGHOST": "immich-postgresql.immich.svc.cluster.local",
        "PGUSER": "immich",
        "PGDATABASE": "immich",
        "PGPASSWORD": "stand-in",
        "DUMP_DIR": str(Path(env["TMPDIR"]) / "work"),
    }


def test_postgres_dump_uses_custom_format_level_9(shell: list, pg_env: dict) -> None:
    result = run(shell, "postgres-dump.sh", pg_env)
    assert result.code == 0, result.out
    work = Path(pg_env["DUMP_DIR"])
    assert (work / "immich.dump").read_text() == "PGDMP stub"
    assert not (work / "immich.dump.partial").exists()
    dumps = [c for c in result.of("pg_dump") if c != ["--version"]]
    assert dumps == [["-Fc", "-Z9", "-f", f"{work}/immich.dump.partial", "immich"]]
    assert result.of("pg_restore") == [["--list", f"{work}/immich.dump.partial"]]


def test_postgres_dump_refuses_a_client_of_another_major(shell: list, pg_env: dict) -> None:
    result = run(shell, "postgres-dump.sh", pg_env, STUB_SERVER_NUM="160004")
    assert result.code != 0
    assert "major" in result.out
    assert [c for c in result.of("pg_dump") if c != ["--version"]] == []


@pytest.mark.parametrize("failing", ["pg_dump", "pg_restore", "psql"])
def test_postgres_dump_fails_when_a_step_fails(shell: list, pg_env: dict, failing: str) -> None:
    result = run(shell, "postgres-dump.sh", pg_env, STUB_FAIL=failing)
    assert result.code != 0
    assert not (Path(pg_env["DUMP_DIR"]) / "immich.dump").exists()


def test_postgres_ship_sends_the_dump_and_prunes(shell: list, pg_env: dict, tmp_path: Path) -> None:
    (Path(pg_env["DUMP_DIR"]) / "immich.dump").write_text("PGDMP")
    base = tmp_path / "nas" / "postgres"
    for day in DATED:
        (base / day).mkdir(parents=True)
    result = run(shell, "postgres-ship.sh", pg_env, NAS_BASE=str(base), RETENTION="3")
    assert result.code == 0, result.out
    assert (base / "2026-11-29" / "immich.dump").read_text() == "PGDMP"
    assert sorted(p.name for p in base.iterdir()) == ["2026-11-15", "2026-11-22", "2026-11-29"]
    assert result.of("rsync")[0][-1] == f"{USER}@{NAS}:{base}/2026-11-29/immich.dump"
    assert_host_key_checked(result, pg_env)


def test_postgres_ship_fails_without_a_dump(shell: list, pg_env: dict, tmp_path: Path) -> None:
    result = run(shell, "postgres-ship.sh", pg_env, NAS_BASE=str(tmp_path / "nas"), RETENTION="3")
    assert result.code != 0
    assert result.of("rsync") == []


def test_postgres_ship_fails_when_rsync_fails(shell: list, pg_env: dict, tmp_path: Path) -> None:
    (Path(pg_env["DUMP_DIR"]) / "immich.dump").write_text("PGDMP")
    result = run(
        shell, "postgres-ship.sh", pg_env, NAS_BASE=str(tmp_path / "nas"), RETENTION="3", STUB_FAIL="rsync"
    )
    assert result.code != 0


# -- restore drill ---------------------------------------------------------------------------


@pytest.fixture
def drill_env(pg_env: dict, tmp_path: Path) -> dict[str, str]:
    pg_base, vol_base = tmp_path / "nas" / "postgres", tmp_path / "nas" / "volumes"
    for day in ("2026-11-15", "2026-11-22"):
        (pg_base / day).mkdir(parents=True)
        (pg_base / day / "immich.dump").write_text(f"dump of {day}")
        kuma = vol_base / day / "uptime-kuma_uptime-kuma-data"
        kuma.mkdir(parents=True)
        (kuma / "kuma.db").write_text(f"sqlite of {day}")
    (pg_base / "9999-99-99").mkdir()  # malformed: never "latest"
    return {
        **pg_env,
        "WORK": pg_env["DUMP_DIR"],
        "PG_BASE": str(pg_base),
        "VOLUMES_BASE": str(vol_base),
        "SQLITE_VOLUMES": "uptime-kuma_uptime-kuma-data",
        "DUMP": f"{pg_env['DUMP_DIR']}/db.dump",
        "DRILL_DB": "restore_drill",
        "TABLES": "asset user",
    }


def test_drill_fetch_takes_the_newest_copies(shell: list, drill_env: dict) -> None:
    result = run(shell, "drill-fetch.sh", drill_env)
    assert result.code == 0, result.out
    work = Path(drill_env["WORK"])
    assert (work / "db.dump").read_text() == "dump of 2026-11-22"
    assert (
        work / "sqlite" / "uptime-kuma_uptime-kuma-data" / "kuma.db"
    ).read_text() == "sqlite of 2026-11-22"
    assert_host_key_checked(result, drill_env)


def test_drill_fetch_fails_without_any_dump(shell: list, drill_env: dict) -> None:
    shutil.rmtree(drill_env["PG_BASE"])
    Path(drill_env["PG_BASE"]).mkdir()
    assert run(shell, "drill-fetch.sh", drill_env).code != 0


def test_drill_sqlite_checks_integrity(shell: list, drill_env: dict) -> None:
    kuma = Path(drill_env["WORK"]) / "sqlite" / "uptime-kuma_uptime-kuma-data"
    kuma.mkdir(parents=True)
    (kuma / "kuma.db").write_text("fine")
    result = run(shell, "drill-sqlite.sh", drill_env)
    assert result.code == 0, result.out
    assert result.of("sqlite3") == [["-readonly", str(kuma / "kuma.db"), "PRAGMA integrity_check;"]]
    (kuma / "kuma.db").write_text("CORRUPT")
    assert run(shell, "drill-sqlite.sh", drill_env).code != 0
    (kuma / "kuma.db").unlink()
    assert run(shell, "drill-sqlite.sh", drill_env).code != 0, "a copy without a database fails"


def test_drill_sqlite_with_real_sqlite(shell: list, drill_env: dict, tmp_path: Path) -> None:
    """The real sqlite3 says "ok" for a sound database and not for a damaged one."""
    require_tool("sqlite3")
    import sqlite3

    kuma = Path(drill_env["WORK"]) / "sqlite" / "uptime-kuma_uptime-kuma-data"
    kuma.mkdir(parents=True)
    db = kuma / "kuma.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE monitor (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO monitor (name) VALUES (?)", [(f"m{i}" * 50,) for i in range(500)])
    conn.close()
    no_stubs = {**drill_env, "PATH": os.environ["PATH"]}
    assert run(shell, "drill-sqlite.sh", no_stubs).code == 0
    data = bytearray(db.read_bytes())
    data[4096 : 4096 + 16] = b"\xff" * 16  # damage the header of the table's root page
    db.write_bytes(bytes(data))
    assert run(shell, "drill-sqlite.sh", no_stubs).code != 0


def test_drill_postgres_restores_into_scratch_and_counts_rows(shell: list, drill_env: dict) -> None:
    result = run(shell, "drill-postgres.sh", drill_env)
    assert result.code == 0, result.out
    sql = [c[-1] for c in result.of("psql")]
    assert sql[1:3] == ['DROP DATABASE IF EXISTS "restore_drill"', 'CREATE DATABASE "restore_drill"']
    assert sql[-1] == 'DROP DATABASE IF EXISTS "restore_drill"', "scratch database dropped at the end"
    assert 'SELECT count(*) FROM "asset"' in sql and 'SELECT count(*) FROM "user"' in sql
    restore = result.of("pg_restore")
    assert restore == [
        ["--exit-on-error", "--no-owner", "--no-privileges", "-d", "restore_drill", drill_env["DUMP"]]
    ]


@pytest.mark.parametrize(
    "extra",
    [{"STUB_ROWS": "0"}, {"STUB_FAIL": "pg_restore"}, {"STUB_SERVER_NUM": "170000"}],
    ids=["empty-table", "restore-fails", "major-mismatch"],
)
def test_drill_postgres_fails(shell: list, drill_env: dict, extra: dict) -> None:
    result = run(shell, "drill-postgres.sh", drill_env, **extra)
    assert result.code != 0
    if "STUB_SERVER_NUM" not in extra:
        assert result.of("psql")[-1][-1] == 'DROP DATABASE IF EXISTS "restore_drill"'


def test_drill_postgres_never_uses_the_live_database(shell: list, drill_env: dict) -> None:
    result = run(shell, "drill-postgres.sh", drill_env, DRILL_DB="immich")
    assert result.code == 2
    assert result.of("psql") == []


# -- static checks ---------------------------------------------------------------------------


def test_scripts_are_shellcheck_clean() -> None:
    shellcheck = require_tool("shellcheck")
    files = sorted(str(p) for p in SCRIPTS.glob("*.sh") if p.name != "k3s-server.sh")
    proc = subprocess.run(
        [shellcheck, "-x", *files], capture_output=True, text=True, cwd=SCRIPTS.parent.parent
    )
    assert proc.returncode == 0, proc.stdout


def test_scripts_are_strict_and_never_skip_host_keys() -> None:
    for path in SCRIPTS.glob("*.sh"):
        text = path.read_text()
        if path.name == "retention.sh":  # runs under the NAS's sh: no pipelines, no pipefail
            assert "set -eu\n" in text and "|" not in text.replace("||", "").replace("| *", ""), path.name
        elif path.name != "backup-lib.sh":
            assert "set -euo pipefail" in text, path.name
        assert "StrictHostKeyChecking=no" not in text, path.name


def test_shellcheck_catches_a_bad_script(tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck")
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nset -eu\nrm -rf $1/*\n")
    assert subprocess.run([shellcheck, str(bad)], capture_output=True).returncode != 0
