#!/usr/bin/env python3
"""The oras Python SDK (PyPI package `oras`) against the registry under test.

Run by tests/e2e/oras.rs as

    python3 oras_client.py --registry 127.0.0.1:PORT --repo NAME --workdir DIR

over plain HTTP (insecure=True). It

1. pushes an SBOM artifact with `Registry.push`: one file layer (uploaded in
   chunks: POST, several PATCH with Content-Range, PUT) and a config whose media
   type is the custom artifact type `application/vnd.example.sbom.v1`;
2. attaches a signature to it as a referrer: a manifest with
   `artifactType: application/vnd.example.signature.v1`, the empty config and a
   `subject` pointing at the SBOM. `Registry.push` can neither set `artifactType`
   nor use the empty descriptor as config, so this manifest is put together from
   the SDK's lower-level calls (`upload_blob`, `upload_manifest`);
3. attaches a second referrer with `Registry.push(subject=...)` (its artifact type
   is its config media type, `application/vnd.example.attestation.v1`);
4. pulls the SBOM back with `Registry.pull` and compares the file, and lists tags.

The SDK has no call for the referrers API, so the Rust side queries it with raw
HTTP.

With `--mode mirror --upstream HOST:PORT --writer USER:PASSWORD` (tests/e2e/mirror.rs)
it pushes an artifact to the upstream as the writer (not with `--no-push`) and
pulls it through the registry under test, a mirror of that upstream.

With `--mode credentials --writer USER:PASSWORD --reader USER:PASSWORD
--public-repo NAME` (tests/e2e/auth_clients/oras.rs), against a registry with
access control, it instead

1. pushes an artifact to `--repo` as the writer (chunked), and one to
   `--public-repo`, with the SDK's `basic` backend (Basic credentials on every
   request);
2. pulls the first back and lists its tags as the reader, with the default `token`
   backend (the token flow, signed in with Basic credentials), and the public one
   with no credentials at all (an anonymous token);
3. tries what must be refused: an anonymous pull of `--repo`, an anonymous push, a
   push by the reader, and a push with a wrong password (last: failed sign-ins are
   throttled).

The `token` backend is not used to push: it keeps the first token it gets (here
one for `pull`, from the HEAD that checks whether a blob exists) and resends it
when the registry answers 401 `insufficient_scope`, so every push through it
fails against a registry that follows Docker's token specification.

The script prints one JSON object with what the Rust side checks, and exits
non-zero (with a message on stderr) on any failure that it does not expect.
"""

import argparse
import hashlib
import json
import os
import sys

import oras.defaults
import oras.oci
import oras.provider

SBOM_TYPE = "application/vnd.example.sbom.v1"
SIGNATURE_TYPE = "application/vnd.example.signature.v1"
ATTESTATION_TYPE = "application/vnd.example.attestation.v1"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"


def check(response, what):
    """Fails unless `response` is a 201 Created."""
    if response.status_code != 201:
        sys.exit(f"{what}: HTTP {response.status_code}: {response.text}")
    return response


def check_uploaded(response, what):
    """Fails unless a blob upload succeeded (200: the SDK found it already there)."""
    if response.status_code not in (200, 201):
        sys.exit(f"{what}: HTTP {response.status_code}: {response.text}")


def sha256_file(path):
    with open(path, "rb") as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()


def subject_of(registry, container, digest):
    """The descriptor of manifest `digest`, from the registry's own bytes."""
    url = f"{registry.prefix}://{container.manifest_url(digest)}"
    response = registry.do_request(
        url, "GET", headers={"Accept": oras.defaults.default_manifest_media_type}
    )
    if response.status_code != 200:
        sys.exit(f"GET {url}: HTTP {response.status_code}")
    body = response.content
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        sys.exit(f"GET {url}: the body does not have digest {digest}")
    return oras.oci.Subject(
        mediaType=response.headers["Content-Type"], digest=digest, size=len(body)
    )


def referrers(args):
    """An artifact, two referrers, a pull and the tags, without credentials."""
    registry = oras.provider.Registry(hostname=args.registry, insecure=True)
    target = f"{args.registry}/{args.repo}"

    # 1. The SBOM: a file layer and a config with the custom media type.
    sbom = {"spdxVersion": "SPDX-2.3", "name": "e2e", "packages": []}
    sbom["packages"] = [{"name": f"pkg-{i}", "versionInfo": f"1.{i}"} for i in range(300)]
    with open("sbom.spdx.json", "w") as f:
        json.dump(sbom, f, indent=1)
    with open("sbom-config.json", "w") as f:
        json.dump({"generator": "oras_client.py"}, f)
    response = registry.push(
        target=f"{target}:sbom",
        files=["sbom.spdx.json:application/spdx+json"],
        manifest_config=f"sbom-config.json:{SBOM_TYPE}",
        manifest_annotations={"org.example.kind": "sbom"},
        do_chunked=True,
        chunk_size=4096,
        quiet=True,
    )
    check(response, "push of the SBOM")
    sbom_digest = response.headers["Docker-Content-Digest"]
    container = registry.get_container(f"{target}:sbom")
    subject = subject_of(registry, container, sbom_digest)

    # 2. The signature: artifactType, the empty config, a subject.
    with open("sbom.sig", "wb") as f:
        f.write(hashlib.sha512(sbom_digest.encode()).digest())
    with open("empty.json", "w") as f:
        f.write("{}")
    layer = oras.oci.NewLayer("sbom.sig", media_type="application/vnd.example.signature.blob.v1")
    check_uploaded(registry.upload_blob("sbom.sig", container, layer), "upload of the signature")
    empty = {"mediaType": EMPTY_TYPE, "digest": sha256_file("empty.json"), "size": 2}
    check_uploaded(registry.upload_blob("empty.json", container, empty), "upload of the empty config")
    manifest = oras.oci.NewManifest()
    manifest["artifactType"] = SIGNATURE_TYPE
    manifest["config"] = empty
    manifest["layers"] = [layer]
    manifest["subject"] = {"mediaType": subject.mediaType, "digest": subject.digest, "size": subject.size}
    manifest["annotations"] = {"org.example.signer": "e2e"}
    signature_container = registry.get_container(f"{target}:signature")
    response = check(registry.upload_manifest(manifest, signature_container), "push of the signature")
    signature_digest = response.headers["Docker-Content-Digest"]
    signature_oci_subject = response.headers.get("OCI-Subject")

    # 3. A second referrer through Registry.push(subject=...).
    with open("attestation.json", "w") as f:
        json.dump({"predicateType": "https://example.com/e2e", "subject": sbom_digest}, f)
    with open("attestation-config.json", "w") as f:
        json.dump({"kind": "attestation"}, f)
    response = registry.push(
        target=f"{target}:attestation",
        files=["attestation.json:application/vnd.example.attestation.payload.v1+json"],
        manifest_config=f"attestation-config.json:{ATTESTATION_TYPE}",
        subject=subject,
        quiet=True,
    )
    check(response, "push of the attestation")
    attestation_digest = response.headers["Docker-Content-Digest"]
    attestation_oci_subject = response.headers.get("OCI-Subject")

    # 4. Pull the SBOM back, and list the tags.
    pulled = registry.pull(target=f"{target}:sbom", outdir="pulled")
    pulled_names = sorted(os.path.relpath(p, "pulled") for p in pulled)
    with open("sbom.spdx.json", "rb") as f:
        original = f.read()
    with open(os.path.join("pulled", "sbom.spdx.json"), "rb") as f:
        pulled_equal = f.read() == original
    tags = registry.get_tags(container)

    print(
        json.dumps(
            {
                "sbom": {"digest": sbom_digest, "size": subject.size},
                "sbom_layer": sha256_file("sbom.spdx.json"),
                "signature": {
                    "digest": signature_digest,
                    "oci_subject": signature_oci_subject,
                },
                "attestation": {
                    "digest": attestation_digest,
                    "oci_subject": attestation_oci_subject,
                },
                "pulled": pulled_names,
                "pulled_equal": pulled_equal,
                "tags": tags,
            }
        )
    )


def signed_in(args, user_password, backend):
    """A client of `backend` signed in as `USER:PASSWORD`, or anonymous (None)."""
    registry = oras.provider.Registry(hostname=args.registry, insecure=True, auth_backend=backend)
    # No credentials from the user's Docker configuration: only those given here.
    registry.auth._auth_config = {"auths": {}, "credsStore": None, "credHelpers": {}}
    if user_password is not None:
        user, password = user_password.split(":", 1)
        registry.auth.set_basic_auth(user, password)
    return registry


def refusal(action):
    """What `action` failed with (the Rust side checks that the registry refused it),
    or None if it succeeded."""
    try:
        action()
    except Exception as e:  # the SDK raises ValueError, and others on the way
        return f"{type(e).__name__}: {e}"
    return None


def push_file(registry, target, name, content):
    """Pushes `content` as file `name` to `target` (chunked); its manifest digest."""
    with open(name, "w") as f:
        f.write(content)
    response = registry.push(
        target=target,
        files=[f"{name}:text/plain"],
        manifest_annotations={"org.example.kind": "e2e"},
        do_chunked=True,
        chunk_size=1024,
        quiet=True,
    )
    check(response, f"push of {target}")
    return response.headers["Docker-Content-Digest"]


def pulled_equal(registry, target, name, outdir):
    """Pulls `target` into `outdir`; whether it holds exactly `name` as pushed."""
    pulled = registry.pull(target=target, outdir=outdir)
    names = sorted(os.path.relpath(p, outdir) for p in pulled)
    with open(name, "rb") as f, open(os.path.join(outdir, name), "rb") as g:
        return names == [name] and f.read() == g.read()


def credentials(args):
    """Signed-in pushes and pulls, and the refusals; see the module docstring."""
    team = f"{args.registry}/{args.repo}"
    public = f"{args.registry}/{args.public_repo}"
    content = json.dumps({"packages": [f"pkg-{i}" for i in range(200)]}, indent=1)
    writer = signed_in(args, args.writer, "basic")
    team_digest = push_file(writer, f"{team}:v1", "team.json", content)
    public_digest = push_file(writer, f"{public}:v1", "public.json", content + "\n")

    reader = signed_in(args, args.reader, "token")
    team_pulled = pulled_equal(reader, f"{team}:v1", "team.json", "pulled-team")
    team_tags = reader.get_tags(reader.get_container(team))
    anonymous = signed_in(args, None, "token")
    public_pulled = pulled_equal(anonymous, f"{public}:v1", "public.json", "pulled-public")

    reader_basic = signed_in(args, args.reader, "basic")
    wrong = signed_in(args, args.writer.split(":", 1)[0] + ":wrong-password", "basic")
    refused = {
        "anonymous_pull": refusal(
            lambda: anonymous.pull(target=f"{team}:v1", outdir="anonymous")
        ),
        "anonymous_push": refusal(
            lambda: push_file(anonymous, f"{public}:v2", "a.json", content + "a")
        ),
        "reader_push": refusal(
            lambda: push_file(reader_basic, f"{team}:v2", "r.json", content + "r")
        ),
        "wrong_password_push": refusal(
            lambda: push_file(wrong, f"{team}:v3", "w.json", content + "w")
        ),
    }
    print(
        json.dumps(
            {
                "team": {"digest": team_digest, "pulled_equal": team_pulled, "tags": team_tags},
                "public": {"digest": public_digest, "pulled_equal": public_pulled},
                "refused": refused,
            }
        )
    )


def mirror(args):
    """Pushes an artifact to `--upstream` as `--writer` (unless `--no-push`),
    then pulls it through the registry, a mirror of that upstream."""
    content = json.dumps({"layers": [f"layer-{i}" for i in range(300)]}, indent=1)
    with open("mirrored.json", "w") as f:
        f.write(content)
    digest = None
    if not args.no_push:
        upstream = signed_in(argparse.Namespace(registry=args.upstream), args.writer, "basic")
        digest = push_file(upstream, f"{args.upstream}/{args.repo}:v1", "mirrored.json", content)
    client = signed_in(args, None, "token")
    pulled = pulled_equal(client, f"{args.registry}/{args.repo}:v1", "mirrored.json", "pulled")
    print(json.dumps({"digest": digest, "pulled_equal": pulled}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--registry", required=True, help="HOST:PORT")
    parser.add_argument("--repo", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--mode", choices=["referrers", "credentials", "mirror"], default="referrers")
    parser.add_argument("--upstream", help="HOST:PORT of the registry that --registry mirrors (mirror mode)")
    parser.add_argument("--no-push", action="store_true", help="mirror mode: pull only")
    parser.add_argument("--writer", help="USER:PASSWORD of a user who may push (credentials mode)")
    parser.add_argument("--reader", help="USER:PASSWORD of a user who may only pull (credentials mode)")
    parser.add_argument("--public-repo", help="a repository anyone may pull (credentials mode)")
    args = parser.parse_args()
    # Registry.push wants the files it pushes under the working directory.
    os.chdir(args.workdir)
    if args.mode == "mirror":
        if not (args.upstream and args.writer):
            parser.error("--mode mirror needs --upstream and --writer")
        mirror(args)
    elif args.mode == "credentials":
        if not (args.writer and args.reader and args.public_repo):
            parser.error("--mode credentials needs --writer, --reader and --public-repo")
        credentials(args)
    else:
        referrers(args)


if __name__ == "__main__":
    main()
