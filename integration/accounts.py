"""Configured users for tests: SCRAM verifiers made by `lambdadb passwd`, and a
configuration file listing users with their roles."""

import subprocess

from harness import BIN


def verifier(password):
    out = subprocess.run([BIN, "passwd"], input=password + "\n", capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def write_config(tmp_path, tls=None, users=(("alice", "s3cret", "reader"),), extra=()):
    lines = ['auth = "scram-sha-256"', *extra]
    if tls:
        lines += [f'tls_cert = "{tls[0]}"', f'tls_key = "{tls[1]}"']
    for name, password, role in users:
        lines += ["[[users]]", f'name = "{name}"', f'password = "{verifier(password)}"',
                  f'role = "{role}"']
    path = tmp_path / "lambdadb.toml"
    path.write_text("\n".join(lines) + "\n")
    assert "s3cret" not in path.read_text(), "no plaintext password in the file"
    return path


