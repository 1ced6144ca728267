// The web board's only script: live updates over server-sent events, "more" in columns,
// the log's live tail and the diff on demand. Every piece of HTML it inserts was made (and
// escaped) by the server; text from the log goes in as text.
"use strict";

(function () {
  const page = document.body.dataset.page;
  const live = document.getElementById("live");

  function newer(a, b) {
    // Cursors are "events.comments": is a later than b?
    const [ae, ac] = String(a || "0.0").split(".").map(Number);
    const [be, bc] = String(b || "0.0").split(".").map(Number);
    return ae > be || ac > bc;
  }

  function compare(a, b) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    }
    return a.length - b.length;
  }

  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  }

  function connect(onHello, onChange) {
    const source = new EventSource("/events");
    source.addEventListener("open", () => live && live.classList.add("on"));
    source.addEventListener("error", () => live && live.classList.remove("on"));
    source.addEventListener("hello", (event) => onHello(JSON.parse(event.data)));
    source.addEventListener("change", (event) => onChange(JSON.parse(event.data)));
    return source;
  }

  // -- the board --------------------------------------------------------------------------

  function board() {
    let cursor = document.body.dataset.cursor;
    let reloading = null;

    function reload() {
      if (reloading) return reloading;
      reloading = fetch("/board/fragment", { credentials: "same-origin" })
        .then((answer) => (answer.ok ? answer.text() : Promise.reject(answer.status)))
        .then((html) => {
          const fresh = fragment(html).firstElementChild;
          document.getElementById("board").replaceWith(fresh);
          cursor = fresh.dataset.cursor;
        })
        .catch(() => {})
        .finally(() => (reloading = null));
      return reloading;
    }

    function place(task) {
      const old = document.getElementById("card-" + task.id);
      if (old) old.remove();
      const column = document.querySelector(`.column[data-status="${task.status}"] .cards`);
      if (!column) return;
      const card = fragment(task.html).firstElementChild;
      card.classList.add("moved");
      const parent = task.parent && column.querySelector(`#card-${CSS.escape(task.parent)}`);
      if (parent) {
        let last = parent;
        while (last.nextElementSibling && last.nextElementSibling.classList.contains("sub")) {
          last = last.nextElementSibling;
        }
        card.classList.add("sub");
        last.after(card);
        return;
      }
      for (const other of column.querySelectorAll(".card:not(.sub)")) {
        if (compare(task.sort, JSON.parse(other.dataset.sort)) < 0) {
          other.before(card);
          return;
        }
      }
      if (column.closest(".column").dataset.complete === "1") column.append(card);
    }

    function counts(found) {
      for (const [status, count] of Object.entries(found || {})) {
        const shown = document.querySelector(`.column[data-status="${status}"] .count`);
        if (shown) shown.textContent = String(count);
      }
    }

    connect(
      (hello) => {
        if (newer(hello.cursor, cursor)) reload();
      },
      (change) => {
        if (change.reload) {
          reload();
          return;
        }
        for (const task of change.tasks) place(task);
        counts(change.counts);
        cursor = change.cursor;
        document.body.dataset.cursor = cursor;
      }
    );

    document.addEventListener("click", (event) => {
      const more = event.target.closest("a.more");
      if (!more || !more.dataset.after) return;
      event.preventDefault();
      const url =
        `/board/column/${encodeURIComponent(more.dataset.status)}` +
        `?after=${encodeURIComponent(more.dataset.after)}`;
      fetch(url, { credentials: "same-origin" })
        .then((answer) => (answer.ok ? answer.text() : Promise.reject(answer.status)))
        .then((html) => {
          const found = fragment(html);
          const next = found.querySelector("a.more");
          if (next) next.remove();
          more.closest(".column").querySelector(".cards").append(found);
          if (next) more.replaceWith(next);
          else {
            more.closest(".column").dataset.complete = "1";
            more.remove();
          }
        })
        .catch(() => {});
    });
  }

  // -- a task -------------------------------------------------------------------------------

  function task() {
    const label = document.body.dataset.task;
    let cursor = null;
    let pending = null;

    function refresh() {
      if (pending) return;
      pending = setTimeout(() => {
        fetch(`/tasks/${encodeURIComponent(label)}/live`, { credentials: "same-origin" })
          .then((answer) => (answer.ok ? answer.text() : Promise.reject(answer.status)))
          .then((html) => {
            const fresh = fragment(html).firstElementChild;
            const old = document.getElementById("task-live");
            if (fresh && old) {
              old.replaceWith(fresh);
              document.body.dataset.status = fresh.dataset.status;
            }
          })
          .catch(() => {})
          .finally(() => (pending = null));
      }, 50);
    }

    connect(
      (hello) => {
        if (cursor !== null && newer(hello.cursor, cursor)) refresh();
        cursor = hello.cursor;
      },
      (change) => {
        cursor = change.cursor;
        const watched = (document.getElementById("task-live").dataset.watch || "").split(" ");
        if (change.reload || change.tasks.some((t) => watched.includes(t.id))) refresh();
      }
    );

    const log = document.getElementById("log");
    if (log && log.dataset.src) {
      const source = new EventSource(log.dataset.src);
      source.addEventListener("run", (event) => {
        const run = JSON.parse(event.data);
        log.textContent = "";
        document.getElementById("log-run").textContent = `run #${run.id}`;
      });
      source.addEventListener("log", (event) => {
        const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.append(document.createTextNode(JSON.parse(event.data).text));
        if (log.textContent.length > 2000000) {
          log.textContent = log.textContent.slice(-1000000);
        }
        if (atEnd) log.scrollTop = log.scrollHeight;
      });
    }

    const loadDiff = document.getElementById("load-diff");
    if (loadDiff) {
      loadDiff.addEventListener("click", (event) => {
        event.preventDefault();
        const target = document.getElementById("diff");
        target.textContent = "…";
        fetch(loadDiff.dataset.src, { credentials: "same-origin" })
          .then((answer) => answer.text())
          .then((html) => {
            target.replaceChildren(fragment(html));
          })
          .catch(() => (target.textContent = "the diff could not be loaded"));
      });
    }
  }

  if (page === "board") board();
  else if (page === "task") task();
})();
