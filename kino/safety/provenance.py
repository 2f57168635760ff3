"""C2PA content credentials: build kino's manifest, sign MP4/PNG files, read and validate them.

Uses the `c2pa-python` library (Content Authenticity Initiative; API of c2pa-python >= 0.10:
Builder, Reader, Signer.from_info, C2paSignerInfo, Settings/Context). Named provenance.py so it
does not shadow the `c2pa` package.

Signing credentials, in order: the config's cert/key paths, $KINO_C2PA_CERT/$KINO_C2PA_KEY, else
a local chain that kino makes once (ES256 on P-256: a root CA and an end-entity certificate with
the digitalSignature key usage and the emailProtection extended key usage, not a CA, as the C2PA
trust model requires) and keeps in $KINO_CONFIG_DIR or ~/.config/kino/c2pa/. The local root is
not trusted by anyone but the user: `kino verify` reports such files as valid but untrusted.
No timestamp authority is used (kino runs offline).
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kino.errors import DependencyError, InputError, MediaError
from kino.io import atomic_write

CREATED = "c2pa.created"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL = "org.kino.generation"
MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".png": "image/png"}


def _c2pa():
    try:
        import c2pa
    except ImportError:
        raise DependencyError("C2PA content credentials need c2pa-python; pip install c2pa-python") from None
    return c2pa


def config_dir(path: str | os.PathLike | None = None) -> Path:
    """kino's per-user config folder: `path`, else $KINO_CONFIG_DIR, else ~/.config/kino."""
    if path is None:
        path = os.environ.get("KINO_CONFIG_DIR") or Path.home() / ".config" / "kino"
    return Path(path)


def mime_of(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in MIME:
        raise InputError(f"C2PA signing supports .mp4 and .png outputs, not {suffix or 'a folder'!r}")
    return MIME[suffix]


# ----------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    """A PEM certificate chain (end-entity first), its private key, and where they came from."""

    chain: bytes
    key: bytes
    source: str  # "config", "env" or "local"
    root: bytes | None = None  # the local root CA (PEM), for trusting one's own files


def _write_private(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


LOCAL_FILES = ("chain.pem", "signer.key", "root.pem")


def make_local_chain(folder: Path) -> Credentials:
    """Create a root CA and an ES256 signing certificate in `folder` (once) and return them.

    Atomic against other processes doing the same at once (two first runs of kino, a server and a
    CLI): the three files are written into a fresh temporary folder beside `folder`, which is then
    renamed into place; rename() of a folder onto an existing non-empty one fails, so exactly one
    process's pair wins and the others read it. A key never sits beside another process's chain.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    if not _complete(folder):
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        try:
            _write_chain(tmp)
            os.chmod(tmp, 0o700)
            os.rename(tmp, folder)  # atomic; fails if another process's folder is already there
        except OSError:
            pass  # lost the race (or a folder from an older kino is there): use what is in place
        finally:
            if tmp.exists():
                for f in tmp.iterdir():
                    f.unlink()
                tmp.rmdir()
    return _read_local(folder)


def _complete(folder: Path) -> bool:
    return all((folder / n).is_file() for n in LOCAL_FILES)


def _read_local(folder: Path) -> Credentials:
    """The local chain in `folder`, checked: its key must be the signing certificate's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if not _complete(folder):
        missing = [n for n in LOCAL_FILES if not (folder / n).is_file()]
        raise InputError(f"the local C2PA folder {folder} lacks {', '.join(missing)}; "
                         "delete the folder and kino makes a new chain")
    chain, key, root = ((folder / n).read_bytes() for n in LOCAL_FILES)
    try:
        pub = serialization.load_pem_private_key(key, None).public_key()
        cert = x509.load_pem_x509_certificate(chain)  # the first certificate: the signer's
        pem = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        if pub.public_bytes(*pem) != cert.public_key().public_bytes(*pem):
            raise ValueError("the key does not belong to the certificate")
    except ValueError as e:
        raise InputError(f"the local C2PA chain in {folder} is broken ({e}); "
                         "delete the folder and kino makes a new one") from None
    return Credentials(chain, key, "local", root)


def _write_chain(folder: Path) -> None:
    """Write a new root CA, signing certificate and key into `folder` (chain.pem, signer.key, root.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=3650)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kino (local)"),
            ]
        )

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=not sign, crl_sign=not sign, encipher_only=False, decipher_only=False,
        )  # fmt: skip

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(name("kino local root CA"))
        .issuer_name(name("kino local root CA"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(sign=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("kino local signer"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    root_pem = root.public_bytes(pem)
    chain = cert.public_bytes(pem) + root_pem
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_private(folder / "signer.key", key_pem)
    _write_private(folder / "root.pem", root_pem)
    _write_private(folder / "chain.pem", chain)


def load_credentials(
    cert: str | None = None, key: str | None = None, folder: str | None = None
) -> Credentials:
    """Signing credentials: given paths, else $KINO_C2PA_CERT/$KINO_C2PA_KEY, else the local chain."""
    source = "config"
    if cert is None and key is None:
        cert, key, source = os.environ.get("KINO_C2PA_CERT"), os.environ.get("KINO_C2PA_KEY"), "env"
    if cert or key:
        if not (cert and key):
            raise InputError(
                "C2PA signing needs both a certificate chain and a key (KINO_C2PA_CERT and KINO_C2PA_KEY)"
            )
        for p in (cert, key):
            if not Path(p).is_file():
                raise InputError(f"C2PA credential file {p} does not exist")
        return Credentials(Path(cert).read_bytes(), Path(key).read_bytes(), source)
    local = config_dir(folder) / "c2pa"
    return _read_local(local) if _complete(local) else make_local_chain(local)


# ----------------------------------------------------------------------------- manifest and signing


def build_manifest(title: str, generator: dict, generation: dict) -> dict:
    """kino's manifest definition: c2pa.created by a trained model, plus the generation assertion."""
    return {
        "claim_generator_info": [generator],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": CREATED,
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": generator,
                        }
                    ]
                },
            },
            {"label": GENERATION_LABEL, "data": generation},
        ],
    }


def sign_file(src: Path, dst: Path, manifest: dict, creds: Credentials) -> str:
    """Sign `src` into `dst` atomically (temp file beside dst, then rename); returns the manifest label."""
    c2pa = _c2pa()
    mime = mime_of(dst)
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, creds.chain, creds.key, None)
    try:
        with atomic_write(dst, mode=None) as tmp:  # a signed output gets the umask's mode, not 0600
            signer = c2pa.Signer.from_info(info)
            # No thumbnail: c2pa-rs embeds a JPEG of the first frame by default, which was 79 KB of an
            # 89 KB 64x64 PNG. The asset is its own preview; the claim, assertions and chain stay.
            settings = c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}})
            builder = c2pa.Builder(manifest, context=c2pa.Context(settings))
            with open(src, "rb") as s, open(tmp, "wb") as d:
                builder.sign(signer, mime, s, d)
            label = _active_label(tmp)
    except c2pa.C2paError as e:
        raise InputError(f"C2PA signing of {dst.name} failed: {str(e).splitlines()[0][:200]}") from None
    return label


def _active_label(path: Path) -> str:
    c2pa = _c2pa()
    with c2pa.Reader(str(path)) as r:
        return json.loads(r.json()).get("active_manifest", "")


# ----------------------------------------------------------------------------- reading


def _faithful_assertions(store: dict, cr: dict) -> None:
    """Replace kino's generation assertion in `store` (Reader.json()) by its copy from Reader.crjson().

    c2pa-rs 0.91's json() turns every CBOR array of small integers into a base64 string, and loses
    the values outside 0..255 ("latent_shape": [1, 16, 5, 8, 8] read back as "ARAFCAg="; [-1, 2] as
    "Ag=="), although the file holds the array (the CBOR is right; crjson() reads it back as written).
    """
    by_label = {m.get("label"): m.get("assertions") or {} for m in cr.get("manifests") or []}
    for label, manifest in (store.get("manifests") or {}).items():
        faithful = by_label.get(label, {})
        for a in manifest.get("assertions") or []:
            if a.get("label") == GENERATION_LABEL and isinstance(faithful.get(GENERATION_LABEL), dict):
                a["data"] = faithful[GENERATION_LABEL]


@dataclass(frozen=True)
class ManifestInfo:
    """What a file's content credentials say and whether they hold."""

    present: bool
    state: str  # "none", "Invalid", "Valid" or "Trusted" (the c2pa validation state)
    store: dict | None  # the whole manifest store as JSON
    failures: tuple[str, ...]  # validation failure codes that matter (not "untrusted")
    trusted: bool
    error: str = ""

    @property
    def active(self) -> dict | None:
        if not self.store:
            return None
        return self.store.get("manifests", {}).get(self.store.get("active_manifest", ""))

    @property
    def valid(self) -> bool:
        """Signature and hash binding hold (whether or not the signer is trusted)."""
        return self.present and self.state in ("Valid", "Trusted") and not self.failures

    def assertion(self, label: str) -> dict | None:
        for a in (self.active or {}).get("assertions", []):
            if a.get("label") == label:
                return a.get("data")
        return None


def read_manifest(path: str | os.PathLike, trust: tuple[bytes, ...] = ()) -> ManifestInfo:
    """Read and validate a file's C2PA manifest; `trust` are PEM root certificates to treat as trusted."""
    c2pa = _c2pa()
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"{p}: no such file")
    context = None
    if trust:
        anchors = b"".join(trust).decode()
        settings = c2pa.Settings.from_dict(
            {"trust": {"user_anchors": anchors}, "verify": {"verify_trust": True}}
        )
        context = c2pa.Context(settings)
    try:
        with c2pa.Reader(str(p), context=context) as r:
            store = json.loads(r.json())
            _faithful_assertions(store, json.loads(r.crjson()))
    except c2pa.C2paError as e:
        text = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        if "ManifestNotFound" in type(e).__name__ or "no JUMBF" in text or "ManifestNotFound" in text:
            return ManifestInfo(False, "none", None, (), False)
        if "NotSupported" in type(e).__name__ or "NotSupported" in text:
            raise MediaError(f"{p}: cannot hold content credentials ({text}); use an .mp4 or .png") from None
        if "could not be parsed" in text:
            raise MediaError(f"{p}: the file is corrupt or truncated ({text})") from None
        # A manifest is there but cannot be read: a broken or tampered manifest.
        return ManifestInfo(True, "Invalid", None, ("unreadable",), False, text)
    state = store.get("validation_state") or "Invalid"
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = tuple(
        f.get("code", "")
        for f in results.get("failure", [])
        if f.get("code") not in ("signingCredential.untrusted", "signingCredential.ocsp.skipped")
    )
    return ManifestInfo(True, state, store, failures, state == "Trusted")
