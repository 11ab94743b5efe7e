// Live reload and the controls of the preview page. Polls /api/state; no framework.
(() => {
  "use strict";
  const main = document.querySelector("main");
  const state = { version: +main.dataset.version, build: +main.dataset.build, as: "", scheme: "light" };
  const frames = ["frame-phone", "frame-desktop"].map((id) => document.getElementById(id));
  const $ = (id) => document.getElementById(id);

  function query(extra) {
    const params = new URLSearchParams(extra || {});
    if (state.as) params.set("as", state.as);
    return params.toString();
  }

  function reload(frame, url) {
    let scroll = 0;
    try { scroll = frame.contentWindow.scrollY; } catch (e) { /* not loaded yet */ }
    frame.addEventListener("load", () => {
      try { frame.contentWindow.scrollTo(0, scroll); } catch (e) { /* ignore */ }
    }, { once: true });
    frame.src = url;
  }

  function reloadFrames() {
    const extra = { v: state.build };
    if (state.scheme === "dark") extra.scheme = "dark";
    for (const frame of frames) reload(frame, "/email.html?" + query(extra));
    for (const frame of document.querySelectorAll(".edition-frame")) {
      reload(frame, frame.dataset.src + "?" + query(extra));
    }
    if (!$("panel-text").hidden) loadText();
  }

  // Fit the frames to the column: each iframe keeps its real width (the email lays out as on
  // a phone or a desktop), wide ones are scaled down to fit beside the others, and below
  // MIN_SCALE they are stacked instead, each at the largest scale that fits (at most 100%).
  const MIN_SCALE = 0.6, GAP = 24, PHONE_MARGIN = 20;
  function fit(container) {
    const available = container.clientWidth;
    if (!available) return; // hidden: fitted when shown
    const figures = [...container.children].filter((f) => f.tagName === "FIGURE");
    const width = (f) => +f.dataset.width + (f.classList.contains("phone") ? PHONE_MARGIN : 0);
    const scalable = figures.filter((f) => "scalable" in f.dataset);
    const fixed = figures.filter((f) => !("scalable" in f.dataset));
    const room = available - GAP * (figures.length - 1) - fixed.reduce((a, f) => a + width(f), 0);
    const wanted = scalable.reduce((a, f) => a + width(f), 0);
    const scale = wanted ? Math.min(1, room / wanted) : 1;
    const stacked = scale < MIN_SCALE;
    container.classList.toggle("stacked", stacked);
    const visible = Math.max(560, window.innerHeight - 330);
    for (const figure of figures) {
      let k = 1;
      if (stacked) k = Math.min(1, available / width(figure));
      else if (scalable.includes(figure)) k = scale;
      const frame = figure.querySelector("iframe");
      const screen = figure.querySelector(".screen");
      frame.style.transform = k < 1 ? `scale(${k})` : "";
      frame.style.height = `${visible / k}px`;
      screen.style.width = `${width(figure) * k}px`;
      screen.style.height = `${visible + (figure.classList.contains("phone") ? PHONE_MARGIN : 0)}px`;
      figure.querySelector(".scale").textContent = k < 1 ? `shown at ${Math.round(k * 100)}%` : "";
    }
  }
  const fitAll = () => document.querySelectorAll(".frames").forEach(fit);
  const observer = new ResizeObserver(fitAll);
  document.querySelectorAll(".frames").forEach((c) => observer.observe(c));
  window.addEventListener("resize", fitAll);
  fitAll();

  async function loadText() {
    const response = await fetch("/email.txt?" + query());
    $("text").textContent = await response.text();
  }

  let refreshes = 0;
  // The build an Approve answer was about: it stays on show (a refused approval says why)
  // until the content changes; the full checks finishing later only bump the version.
  let approvalAnswered = null;
  async function refreshParts(build = state.build) {
    const mine = ++refreshes;
    const response = await fetch("/api/parts?" + query());
    const parts = await response.json();
    if (mine !== refreshes) return; // superseded by a newer refresh
    for (const key of ["status", "problems", "inbox", "checks"]) {
      $(key).innerHTML = parts[key];
    }
    if (approvalAnswered === null || approvalAnswered !== build) {
      const approval = $("approve-result");
      approval.className = "";
      approval.textContent = parts.approval;  // an edit leaves earlier approvals behind
      approvalAnswered = null;
    }
  }

  async function poll() {
    try {
      const response = await fetch("/api/state", { cache: "no-store" });
      const s = await response.json();
      $("live").classList.remove("down");
      if (s.version !== state.version) {
        await refreshParts(s.build);
        state.version = s.version;
      }
      if (s.build !== state.build) {
        state.build = s.build;
        reloadFrames();
      }
    } catch (e) {
      $("live").classList.add("down");
    }
    setTimeout(poll, 600);
  }

  // Tabs
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll("[role=tab]")) {
        const selected = other === tab;
        other.setAttribute("aria-selected", String(selected));
        $(other.getAttribute("aria-controls")).hidden = !selected;
      }
      if (tab.id === "tab-text") loadText();
      if (tab.id === "tab-report") $("frame-report").src = $("frame-report").dataset.src + "?t=" + Date.now();
    });
  }

  // Light / dark toggle: the frames show the email as a mail app in that scheme does
  const schemeButton = $("scheme");
  schemeButton.addEventListener("click", () => {
    state.scheme = state.scheme === "dark" ? "light" : "dark";
    schemeButton.setAttribute("aria-pressed", String(state.scheme === "dark"));
    document.body.classList.toggle("dark-frames", state.scheme === "dark");
    reloadFrames();
  });

  // Recipient selector
  const select = $("recipient");
  const sampleOption = select.options[0];
  const sampleName = $("send-as-name").textContent;
  let searches = 0;
  async function search(q) {
    const mine = ++searches;
    const response = await fetch("/api/recipients?" + new URLSearchParams({ q }));
    const data = await response.json();
    if (mine !== searches) return; // a newer search has been started meanwhile
    const current = select.value;
    select.replaceChildren(sampleOption);
    for (const r of data.recipients) {
      const option = new Option(r.name ? `${r.name} <${r.email}>` : r.email, r.email);
      select.add(option);
    }
    select.value = [...select.options].some((o) => o.value === current) ? current : "";
    const shown = data.recipients.length;
    $("recipient-note").textContent = data.error || (shown
      ? `${shown} subscriber${shown === 1 ? "" : "s"} shown${shown === 20 ? " (the first 20; search for others)" : ""}.`
      : (q ? "No subscriber matches." : "No subscribers in the database yet: previewing as the sample reader."));
  }
  const searchBox = $("recipient-search");
  if (!searchBox.disabled) {
    let timer;
    searchBox.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => search(searchBox.value.trim()), 250);
    });
    search("");
  }
  select.addEventListener("change", async () => {
    state.as = select.value;
    $("send-as").value = select.value; // Send test personalises as the previewed subscriber
    const chosen = select.selectedOptions[0];
    $("send-as-name").firstElementChild.textContent =
      select.value ? chosen.textContent.replace(/ <[^>]*>$/, "") : sampleName;
    reloadFrames();
    await refreshParts();
  });

  // The page's forms (Send test, Approve): posted in the background, the answer shown below
  function postInBackground(form, result, busy, answered = () => {}) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      result.className = "";
      result.textContent = busy;
      try {
        const response = await fetch(form.action, {
          method: "POST",
          body: new URLSearchParams(new FormData(form)),
          credentials: "same-origin",
        });
        const data = await response.json();
        result.className = data.ok ? "ok" : "bad";
        result.textContent = data.message;
        answered();
      } catch (e) {
        result.className = "bad";
        result.textContent = "The preview server did not answer.";
      } finally {
        button.disabled = false;
      }
    });
  }
  postInBackground($("send-test"), $("send-result"), "Sending…");
  // Sign-off: approve the version on show (an edit since shows as no longer counting)
  postInBackground($("approve"), $("approve-result"), "Checking and approving…",
                   () => { approvalAnswered = state.build; });

  setTimeout(poll, 600);
})();
