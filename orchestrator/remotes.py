"""Remote repositories: tasks whose repository is a URL, worked on from every host.

A task's repository is either a local checkout (a path: worktrees are made from it, as they
always were) or a remote (a URL: ``https://``, ``ssh://``, ``file://``, ``user@host:path``;
a bare repository's path is stored as its ``file://`` URL). Each host keeps its own clone of
a remote under `clones_root` (`clone_dir`: a sanitised name and a hash of the URL, never
anything from a task's text), fetches before it makes or reuses a worktree, and pushes a
task's branch after every run, so a task's work is never only on one host's disk.

A branch may then be in two places in a clone: the local branch (what runs on this host
committed) and the remote-tracking one (what any host pushed). `tips` says which of them
hold work the other lacks, so merges take both when they diverged and nothing is dropped.

URLs are checked strictly before git ever sees one: one that starts with ``-`` (git would
read it as an option), an unknown transport (``ext::``...), a password (the board is shared
by every host: use a credential helper) or a control character is refused. Git is always
given ``--`` before a URL, never a shell, and never a terminal to prompt on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import secrets
import shutil
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from board import errors
from orchestrator import git, merging, processes, worktrees

REMOTE = "origin"  # the name of the remote in every clone kanban makes
# Talking to a remote: never prompt (a dispatcher has no one to answer), never hang forever.
_NETWORK_ENV = {"GIT_TERMINAL_PROMPT": "0"}
NETWORK_TIMEOUT = 900.0
PROBE_TIMEOUT = 30.0  # `probe`: a remote that answers at all answers well within it

_FORMS = "https://, ssh://, file://, user@host:path, or a bare repository's path"
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
_PORT = re.compile(r"[0-9]{1,5}")
# scp-like syntax, as git reads it: a colon before any slash.
_SCP = re.compile(r"(?P<user>[^@/:]+)@(?P<host>[^@/:]+):(?P<path>.*)")
_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
# git's remote-helper syntax, <transport>::<address> (``ext::`` runs a command).
_HELPER = re.compile(r"(?P<transport>[A-Za-z][A-Za-z0-9+.-]*)::")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class InvalidURL(errors.InvalidInput):
    """A repository URL kanban will not hand to git."""

    def __init__(self, url: str, why: str) -> None:
        self.url = url
        super().__init__(f"invalid repository URL {_without_password(url)!r}: {why}")


def _without_password(url: str) -> str:
    """`url` as it may be shown: a password in it (refused anyway) is never repeated."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", url)


# --- what a repository is ----------------------------------------------------------------


def _looks_like_url(repo: str) -> bool:
    return "://" in repo or _SCP.fullmatch(repo) is not None


def url_of(repo: str | None) -> str | None:
    """The remote a task's repository names, or None for a local checkout (a path).

    Syntax only, no I/O: the board stores a remote as a URL (`classify` made it one).
    """
    return repo if repo is not None and _looks_like_url(repo) else None


def classify(repo: str) -> str | None:
    """What ``--repo`` names: a remote's URL (checked), a bare repository's path (as its
    ``file://`` URL), or None for anything else (a checkout: `git.open_repo` checks it)."""
    if repo.startswith("-"):
        raise InvalidURL(repo, "it starts with '-', which git would read as an option")
    if _names_a_remote(repo):
        return check_url(repo)
    path = Path(repo).expanduser()
    bare = _bare_repository(path) if path.is_dir() else None
    return None if bare is None else bare.as_uri()


@dataclasses.dataclass(frozen=True)
class Repository:
    """A task's repository as the board stores it, and the base its branch starts from."""

    repo: str  # a remote's URL, or a checkout's top-level directory
    base_ref: str | None  # a commit sha; None: not pinned (a subtask's is its parent's)
    base_branch: str | None  # the branch it lands into; None: a tag, a commit, or unpinned


def resolve(
    repo: str, base: str | None, *, pin: bool = True, relative_to: Path | None = None
) -> Repository:
    """A task's ``--repo`` and ``--base``, wherever they come from (`kanban create`'s options,
    a batch file, the web board's form): a remote (`classify`), whose base is asked of it, or
    a checkout, whose base is read from it. The base is pinned when `pin` (a top-level task)
    or when `base` is given. A relative path is relative to `relative_to` (a batch file's
    directory) when given, else to the working directory; a URL is a URL wherever it is.
    """
    where = repo
    if relative_to is not None and not (repo.startswith("-") or _names_a_remote(repo)):
        where = os.fspath((relative_to / Path(repo).expanduser()).resolve())
    url = classify(where)
    pinned = pin or base is not None
    if url is not None:
        base_ref, base_branch = resolve_base(url, base) if pinned else (None, None)
        return Repository(url, base_ref, base_branch)
    top = str(git.open_repo(Path(where).expanduser()).path)
    if not pinned:
        return Repository(top, None, None)
    return Repository(top, git.resolve_base(top, base), git.base_branch(top, base))


def _names_a_remote(repo: str) -> bool:
    """Whether `repo` is written as a URL (or as git's ``<transport>::`` syntax), not a path."""
    return _looks_like_url(repo) or _HELPER.match(repo) is not None


def _bare_repository(path: Path) -> Path | None:
    """The bare repository `path` is (or is inside), if it is one."""
    result = git.run(
        path, "rev-parse", "--is-bare-repository", "--absolute-git-dir", ok=git.ANY_STATUS
    )
    lines = result.out.splitlines()
    if result.status != 0 or len(lines) != 2 or lines[0] != "true":
        return None
    return Path(lines[1]).resolve()


def check_url(url: str) -> str:
    """Return `url` if it is a remote kanban hands to git; raise `InvalidURL` otherwise."""
    if not isinstance(url, str) or not url:
        raise InvalidURL(str(url), "it is empty")
    if url.startswith("-"):
        raise InvalidURL(url, "it starts with '-', which git would read as an option")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidURL(url, "it contains white space or a control character")
    helper = _HELPER.match(url)
    if helper is not None:
        raise InvalidURL(
            url, f"the transport {helper['transport']!r} is not one kanban uses; it takes {_FORMS}"
        )
    if "://" not in url:
        found = _SCP.fullmatch(url)
        if found is None:
            raise InvalidURL(url, f"kanban takes {_FORMS}")
        _check_user(url, found["user"])
        _check_host(url, found["host"])
        _check_path(url, found["path"])
        return url
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("https", "ssh", "file"):
        raise InvalidURL(url, f"the transport {scheme!r} is not one kanban uses; it takes {_FORMS}")
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise InvalidURL(url, "a repository URL has no query (?) or fragment (#)")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidURL(url, "a file:// URL names a path on this host (file:///path)")
        _check_path(url, parts.path)
        return url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if ":" in userinfo:
        raise InvalidURL(
            url,
            "it holds a password, which the board would show every host: use a credential "
            "helper or an SSH key instead",
        )
    if at:
        _check_user(url, userinfo)
    host, port = hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]")
        host, port = hostport[: end + 1], hostport[end + 1 :].removeprefix(":")
    elif ":" in hostport:
        host, port = hostport.rsplit(":", 1)
    _check_host(url, host)
    if port and not _PORT.fullmatch(port):
        raise InvalidURL(url, f"{port!r} is not a port")
    _check_path(url, parts.path)
    return url


def _check_user(url: str, user: str) -> None:
    if not _USER.fullmatch(user):
        raise InvalidURL(url, f"{user!r} is not a user name kanban passes on")


def _check_host(url: str, host: str) -> None:
    if not _HOST.fullmatch(host):
        raise InvalidURL(url, f"{host!r} is not a host name (letters, digits, '.' and '-')")


def _check_path(url: str, path: str) -> None:
    if not path.strip("/"):
        raise InvalidURL(url, "it names no repository")
    if path.lstrip("/").startswith("-"):
        raise InvalidURL(url, "its path starts with '-'")


# --- this host's clone -------------------------------------------------------------------


def clone_dir(url: str, root: Path | str) -> Path:
    """Where this host keeps its clone of `url`: ``<root>/<name>-<hash of the URL>``.

    The name (the URL's last part, sanitised) is only for people; the hash keeps two remotes
    of the same name apart. Pure: nothing is made.
    """
    last = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    name = _UNSAFE_NAME_CHARS.sub("-", last).strip(".-")[:40] or "repo"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    return Path(root).expanduser() / f"{name}-{digest}"


def ensure_clone(url: str, root: Path | str) -> Path:
    """This host's clone of `url`, cloned if it has none yet; returns its path.

    Cloned aside and renamed into place, so a clone cut short (a killed dispatcher) is never
    taken for one: the next call removes its leftovers and clones again. The clone has no
    checkout of its own and no local branch but kanban's: its HEAD is detached, and the
    remote's branches are its remote-tracking ones (``refs/remotes/origin/...``).
    """
    check_url(url)
    target = clone_dir(url, root)
    if (target / ".git").is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with processes.exclusive(target.parent / f".{target.name}.lock"):
        if (target / ".git").is_dir():  # cloned meanwhile by another process
            return target
        for leftover in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        aside = target.parent / f".{target.name}.tmp-{secrets.token_hex(4)}"
        try:
            git.run(
                target.parent,
                "clone",
                "-q",
                "--no-checkout",
                "--origin",
                REMOTE,
                "--",
                url,
                os.fspath(aside),
                environ=_NETWORK_ENV,
                timeout=NETWORK_TIMEOUT,
            )
            _detach(aside)
            os.rename(aside, target)
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    return target


def _detach(clone: Path) -> None:
    """Detach the fresh clone's HEAD and drop the local branch cloning made: a local copy of
    the remote's default branch would only go stale (kanban reads the remote-tracking one)."""
    head = git.run(clone, "rev-parse", "--verify", "-q", "HEAD^{commit}", ok=(0, 1)).out.strip()
    if not head:
        # The remote's HEAD names no branch: any of its branches will do for a detached HEAD
        # (kanban's own worktrees, landing's, start from one); an empty remote has none.
        first = git.run(
            clone, "for-each-ref", "--count=1", "--format=%(objectname)", f"refs/remotes/{REMOTE}/"
        ).out.strip()
        if not first:
            return
        head = first
    git.run(clone, "update-ref", "--no-deref", "HEAD", head)
    local = git.run(clone, "for-each-ref", "--format=%(refname)", "refs/heads/").out.split()
    for ref in local:
        git.run(clone, "update-ref", "-d", ref)


def fetch(clone: Path | str) -> None:
    """Bring the clone's remote-tracking branches (and tags) up to date with the remote."""
    clone = Path(clone)
    with worktrees.repo_lock(_common_dir(clone)):
        git.run(
            clone,
            "fetch",
            "-q",
            "--prune",
            "--tags",
            REMOTE,
            environ=_NETWORK_ENV,
            timeout=NETWORK_TIMEOUT,
        )


def push(clone: Path | str, branch: str) -> bool:
    """Push the local `branch` to the remote's branch of the same name; False when there is
    no such local branch (nothing to push).

    Never forced: a remote branch that moved to what this one lacks refuses it, and the
    work stays here (the next run of the task merges the two).
    """
    clone = Path(clone)
    ref = f"refs/heads/{git.check_branch(branch)}"
    if git.run(clone, "show-ref", "--verify", "-q", ref, ok=(0, 1)).status != 0:
        return False
    with worktrees.repo_lock(_common_dir(clone)):
        git.run(
            clone,
            "push",
            "-q",
            "--porcelain",
            REMOTE,
            "--",
            f"{ref}:{ref}",
            environ=_NETWORK_ENV,
            timeout=NETWORK_TIMEOUT,
        )
    return True


def push_onto(clone: Path | str, branch: str, *, new: str, expected: str) -> bool:
    """Move the remote's `branch` from `expected` to `new` (a descendant), a compare-and-swap
    (``--force-with-lease``): False if it no longer is at `expected` (someone pushed)."""
    clone = Path(clone)
    ref = f"refs/heads/{git.check_branch(branch)}"
    with worktrees.repo_lock(_common_dir(clone)):
        result = git.run(
            clone,
            "push",
            "-q",
            "--porcelain",
            f"--force-with-lease={ref}:{git.check_rev(expected)}",
            REMOTE,
            "--",
            f"{git.check_rev(new)}:{ref}",
            ok=git.ANY_STATUS,
            environ=_NETWORK_ENV,
            timeout=NETWORK_TIMEOUT,
        )
    if result.status == 0:
        return True
    if "[rejected]" in result.out:  # stale info, fetch first: it moved
        return False
    raise git.GitError(f"pushing {branch} to {REMOTE} failed: {result.message()}")


def _common_dir(clone: Path) -> Path:
    return clone / ".git"  # a clone kanban made: never a linked worktree


# --- where a branch's work is ------------------------------------------------------------


def remote_ref(branch: str) -> str:
    return f"refs/remotes/{REMOTE}/{git.check_branch(branch)}"


def _refs(repo: Path | str, branches: Iterable[str]) -> dict[str, str]:
    """{ref: sha} of the local and remote-tracking refs of `branches` that exist."""
    wanted = []
    for branch in branches:
        wanted += [f"refs/heads/{git.check_branch(branch)}", remote_ref(branch)]
    if not wanted:
        return {}
    out = git.run(Path(repo), "for-each-ref", "--format=%(refname)%00%(objectname)", *wanted).out
    return dict(line.split("\0", 1) for line in out.splitlines() if "\0" in line)


def is_ancestor(repo: Path | str, commit: str, of: str) -> bool:
    result = git.run(Path(repo), "merge-base", "--is-ancestor", commit, of, ok=git.ANY_STATUS)
    if result.status not in (0, 1):
        raise git.GitError(f"cannot tell whether {commit} is in {of}: {result.message()}")
    return result.status == 0


def on_remote(clone: Path | str, commit: str) -> bool:
    """Whether a branch of the remote, as this clone last fetched it, holds `commit`: then the
    work up to it is not on this host's disk only."""
    found = git.run(
        Path(clone),
        "for-each-ref",
        "--count=1",
        "--format=%(refname)",
        f"--contains={git.check_rev(commit)}",
        f"refs/remotes/{REMOTE}/",
    )
    return bool(found.out.strip())


def tips(repo: Path | str, branches: Iterable[str]) -> dict[str, list[str]]:
    """{branch: the refs that hold its work}, for the branches that exist here at all.

    One ref when the local and the pushed branch agree or one holds the other (the one that
    holds it), both when they diverged (a push that failed, then a run on another host):
    merging both loses nothing.
    """
    branches = list(dict.fromkeys(branches))
    found = _refs(repo, branches)
    result: dict[str, list[str]] = {}
    for branch in branches:
        local, pushed = f"refs/heads/{branch}", remote_ref(branch)
        mine, theirs = found.get(local), found.get(pushed)
        if mine is None and theirs is None:
            continue
        if theirs is None or mine == theirs:
            result[branch] = [local]
        elif mine is None:
            result[branch] = [pushed]
        elif is_ancestor(repo, theirs, mine):
            result[branch] = [local]
        elif is_ancestor(repo, mine, theirs):
            result[branch] = [pushed]
        else:
            result[branch] = [pushed, local]
    return result


def freshest(repo: Path | str, branch: str) -> str | None:
    """The newest commit of `branch` here (the pushed one when the two diverged); None when
    neither the local nor the pushed branch exists."""
    refs = tips(repo, [branch]).get(branch)
    if not refs:
        return None
    return git.run(Path(repo), "rev-parse", "--verify", f"{refs[0]}^{{commit}}").out.strip()


def pushed(repo: Path | str, branch: str) -> str | None:
    """The commit the remote's `branch` was at when this clone last fetched, if it has one."""
    return _refs(repo, [branch]).get(remote_ref(branch))


def default_tip(clone: Path | str) -> str:
    """The commit of the remote's default branch, as last fetched."""
    found = git.run(
        Path(clone),
        "rev-parse",
        "--verify",
        "-q",
        f"refs/remotes/{REMOTE}/HEAD^{{commit}}",
        ok=(0, 1),
    ).out.strip()
    if not found:
        raise git.GitError(
            f"the remote of {clone} has no default branch (its HEAD names no commit): create "
            "the task with --base BRANCH"
        )
    return found


def catch_up(
    worktree: Path | str, branch: str, pushed: str, label: str
) -> list[merging.MergeOutcome] | None:
    """Bring a task's worktree up to `pushed`, its branch as last pushed (by another host),
    when it lacks it: None when it had it all; else the merge, if the two diverged (empty:
    a fast-forward). Nothing is dropped: what was left uncommitted here is carried along by a
    fast-forward, or committed before a merge.
    """
    if is_ancestor(worktree, pushed, "HEAD"):
        return None
    if merging.fast_forward(worktree, pushed):
        return []
    try:
        worktrees.commit_all(
            worktree, f"kanban: {label} work left on this host, before taking what was pushed"
        )
    except errors.KanbanError:
        pass  # then the merge below says what is wrong
    if merging.fast_forward(worktree, pushed):
        return []
    return merging.merge_branches(
        worktree,
        [branch],
        lambda b: f"kanban: merge {b} as pushed into {label}",
        refs={branch: [remote_ref(branch)]},
    )


# --- asking the remote itself ------------------------------------------------------------


def resolve_base(url: str, base: str | None) -> tuple[str, str | None]:
    """(the commit a new task of `url` starts from, the branch it lands into or None), asked
    of the remote (``git ls-remote``): its default branch, or `base` (a branch, a tag, or a
    full commit sha, which cannot be checked before a clone fetches it)."""
    check_url(url)
    if base is None:
        out = _ls_remote(url, "--symref", "HEAD")
        branch, sha = None, None
        for line in out.splitlines():
            value, _, name = line.partition("\t")
            if name != "HEAD":
                continue
            if value.startswith("ref: "):
                branch = value.removeprefix("ref: ").removeprefix("refs/heads/")
            else:
                sha = value
        if sha is None:
            raise git.GitError(
                f"{url} has no default branch (its HEAD names no commit): pass --base BRANCH"
            )
        return sha, branch
    name = git.check_rev(base, "base").removeprefix("refs/heads/")
    heads, tags = f"refs/heads/{name}", f"refs/tags/{name}"
    found = {}
    for line in _ls_remote(url, heads, tags).splitlines():
        value, _, ref = line.partition("\t")
        found[ref] = value
    if heads in found:
        return found[heads], name
    tag = found.get(f"{tags}^{{}}") or found.get(tags)
    if tag is not None:
        return tag, None
    if _SHA.fullmatch(base):
        return base, None
    raise git.GitError(
        f"{url} has no branch or tag {base!r}: name one of its branches or tags, or a full "
        "commit sha"
    )


def probe(url: str, *, timeout: float = PROBE_TIMEOUT) -> list[str]:
    """The remote's branches (``git ls-remote --heads``), asked the way a dispatcher asks:
    with no one to answer a prompt (no terminal prompt; ssh in ``BatchMode``, so a password,
    a passphrase or an unknown host key fails at once instead of waiting), within `timeout`.
    Raises `git.GitError` with git's own message when the remote does not answer."""
    check_url(url)
    started = time.monotonic()
    try:
        result = git.run(
            Path(os.sep),
            "ls-remote",
            "--heads",
            "--",
            url,
            ok=git.ANY_STATUS,
            environ={**_NETWORK_ENV, **_ssh_batch_mode()},
            timeout=timeout,
        )
    except git.GitError as exc:
        if time.monotonic() - started < timeout:
            raise  # git itself could not run
        raise git.GitError(f"{url} did not answer within {timeout:g} s") from exc
    if result.status != 0:
        raise git.GitError(f"cannot read the repository {url}: {result.message()}")
    return [line.partition("\t")[2].removeprefix("refs/heads/") for line in result.out.splitlines()]


def _ssh_batch_mode() -> dict[str, str]:
    """``GIT_SSH_COMMAND``: the user's own ssh command ($GIT_SSH_COMMAND, else core.sshCommand,
    else ssh) with ``-o BatchMode=yes`` added; nothing when it is not OpenSSH's ssh (a program
    in $GIT_SSH, a wrapper), whose options are unknown."""
    if os.environ.get("GIT_SSH") and not os.environ.get("GIT_SSH_COMMAND"):
        return {}
    command = os.environ.get("GIT_SSH_COMMAND") or (
        git.run(Path(os.sep), "config", "--get", "core.sshCommand", ok=(0, 1)).out.strip()
    )
    command = command.strip() or "ssh"
    if os.path.basename(command.split()[0]) != "ssh":
        return {}
    return {"GIT_SSH_COMMAND": f"{command} -o BatchMode=yes"}


def _ls_remote(url: str, *args: str) -> str:
    options = [a for a in args if a.startswith("--")]
    patterns = [a for a in args if not a.startswith("--")]
    result = git.run(
        Path(os.sep),
        "ls-remote",
        *options,
        "--",
        url,
        *patterns,
        ok=git.ANY_STATUS,
        environ=_NETWORK_ENV,
        timeout=NETWORK_TIMEOUT,
    )
    if result.status != 0:
        raise git.GitError(f"cannot read the repository {url}: {result.message()}")
    return result.out
