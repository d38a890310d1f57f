"""A real OpenLDAP server (Debian's slapd) on a loopback port, for the directory sign-in
tests (S7): its own configuration, certificate and data, StartTLS required for every
operation (``security tls=1``), and ACLs that show nothing to anonymous clients, so
that a client that skips TLS or the service bind gets nowhere.

People (ou=people): alice (Sales group), adam (Admins group), carol (disabled:
``employeeType: disabled``), dave (no group). Passwords: ``<uid>-Directory-2026``.
The service account Oxygis binds as: cn=oxygis,ou=services (``SERVICE_PASSWORD``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.served import free_port, wait_listening

BASE = "dc=acme,dc=test"
ADMIN_DN, ADMIN_PASSWORD = f"cn=admin,{BASE}", "Root-of-the-test-directory"
SERVICE_DN, SERVICE_PASSWORD = f"cn=oxygis,ou=services,{BASE}", "Service-bind-2026"
SALES_GROUP, ADMINS_GROUP = f"cn=sales,ou=groups,{BASE}", f"cn=admins,ou=groups,{BASE}"
PEOPLE = {
    # uid: (given name, surname, mail, groups, disabled)
    "alice": ("Alice", "Martin", "alice@acme.test", [SALES_GROUP], False),
    "adam": ("Adam", "Durand", "adam@acme.test", [ADMINS_GROUP], False),
    "carol": ("Carol", "Petit", "carol@acme.test", [SALES_GROUP], True),
    "dave": ("Dave", "Moreau", "dave@acme.test", [], False),
}


def password_of(uid: str) -> str:
    return f"{uid}-Directory-2026"


def person_dn(uid: str) -> str:
    return f"uid={uid},ou=people,{BASE}"


def slapd_binary() -> str | None:
    return shutil.which("slapd") or (
        "/usr/sbin/slapd" if Path("/usr/sbin/slapd").exists() else None
    )


def _ldif() -> str:
    entries = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: acme\no: Acme",
        f"dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups",
        f"dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services",
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: oxygis\nuserPassword: {SERVICE_PASSWORD}",
    ]
    for uid, (given, sn, mail, _groups, disabled) in PEOPLE.items():
        entries.append(
            f"dn: {person_dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {given} {sn}\n"
            f"givenName: {given}\nsn: {sn}\nmail: {mail}\nuserPassword: {password_of(uid)}"
            + ("\nemployeeType: disabled" if disabled else "")
        )
    for group in (SALES_GROUP, ADMINS_GROUP):
        members = [person_dn(uid) for uid, p in PEOPLE.items() if group in p[3]]
        cn = group.split(",")[0].split("=")[1]
        entries.append(
            f"dn: {group}\nobjectClass: groupOfNames\ncn: {cn}\n"
            + "\n".join(f"member: {m}" for m in members)
        )
    return "\n\n".join(entries) + "\n"


class DirectoryServer:
    """slapd in a subprocess on 127.0.0.1:<port> (ldap:// with StartTLS), and ldaps://
    on a second port."""

    def __init__(self, folder: Path):
        from oxygis.web.tls import ensure_local_tls

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        tls = ensure_local_tls(folder / "tls", ["ldap.localhost"], stem="slapd")
        self.ca_pem = tls.ca_cert.read_text()
        self.port, self.ldaps_port = free_port(), free_port()
        data = folder / "data"
        data.mkdir(exist_ok=True)
        conf = folder / "slapd.conf"
        conf.write_text(
            "\n".join(
                [
                    *(
                        f"include /etc/ldap/schema/{s}.schema"
                        for s in ("core", "cosine", "inetorgperson", "nis")
                    ),
                    "modulepath /usr/lib/ldap",
                    "moduleload back_mdb",
                    f"pidfile {folder}/slapd.pid",
                    f"TLSCACertificateFile {tls.ca_cert}",
                    f"TLSCertificateFile {tls.cert}",
                    f"TLSCertificateKeyFile {tls.key}",
                    # No operation, not even a bind, without TLS.
                    "security tls=1",
                    "database mdb",
                    f'suffix "{BASE}"',
                    f'rootdn "{ADMIN_DN}"',
                    f"rootpw {ADMIN_PASSWORD}",
                    f"directory {data}",
                    "access to attrs=userPassword by anonymous auth by * none",
                    f'access to * by dn.exact="{SERVICE_DN}" read by self read by * none',
                    "",
                ]
            )
        )
        (folder / "data.ldif").write_text(_ldif())
        subprocess.run(
            [slapd_binary(), "-T", "add", "-f", str(conf), "-l", str(folder / "data.ldif")],
            check=True,
            capture_output=True,
        )
        self.log = open(folder / "slapd.log", "w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                slapd_binary(),
                "-d",
                "0",  # stay in the foreground (the test owns the process)
                "-f",
                str(conf),
                "-h",
                f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.ldaps_port}/",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_listening(self.process, self.port, "slapd", self.output, seconds=20)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def _admin(self):
        import ssl

        import ldap3

        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_data=self.ca_pem)
        server = ldap3.Server(self.url, tls=tls)
        for attempt in range(3):  # slapd just resumed from pause() may answer one busy
            conn = ldap3.Connection(server, ADMIN_DN, ADMIN_PASSWORD, receive_timeout=10)
            try:
                conn.open()
                conn.start_tls()
                conn.bind()
                return conn
            except ldap3.core.exceptions.LDAPException:
                if attempt == 2:
                    raise
                time.sleep(0.5)

    def set_attribute(self, uid: str, attribute: str, values: list[str]) -> None:
        """Change a person as the directory's own administrator would."""
        import ldap3

        conn = self._admin()
        try:
            conn.modify(person_dn(uid), {attribute: [(ldap3.MODIFY_REPLACE, values)]})
            assert conn.result["result"] == 0, conn.result
        finally:
            conn.unbind()

    def pause(self) -> None:
        """A directory that accepts connections but never answers (SIGSTOP)."""
        self.process.send_signal(19)

    def resume(self) -> None:
        self.process.send_signal(18)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log.close()
