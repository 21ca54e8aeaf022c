// Small progressive enhancements shared by every page; each page works without them.
"use strict";

// Charts: <div data-figure="ID"> with <script type="application/json" id="ID">{data, layout}</script>.
function renderCharts() {
  if (typeof Plotly === "undefined") return;
  document.querySelectorAll("[data-figure]").forEach((element) => {
    const source = document.getElementById(element.dataset.figure);
    if (!source) return;
    const figure = JSON.parse(source.textContent);
    const layout = Object.assign({margin: {t: 30, r: 20, b: 45, l: 60}, font: {size: 12}}, figure.layout || {});
    Plotly.newPlot(element, figure.data, layout, {responsive: true, displaylogo: false});
    element.dataset.rendered = String(figure.data.length);
  });
}

// Progress of background jobs: <div data-poll-url="..."> holding a <progress> and a .progress-message.
// Polls the JSON {status, progress, message} each second and reloads the page once the job ends.
function pollProgress() {
  document.querySelectorAll("[data-poll-url]").forEach((element) => {
    const bar = element.querySelector("progress");
    const text = element.querySelector(".progress-message");
    const tick = async () => {
      try {
        const response = await fetch(element.dataset.pollUrl, {headers: {Accept: "application/json"}});
        if (!response.ok) throw new Error(response.statusText);
        const job = await response.json();
        if (bar) bar.value = job.progress;
        if (text) text.textContent = `${job.status} · ${job.progress}% · ${job.message || ""}`;
        if (["succeeded", "failed", "cancelled"].includes(job.status)) {
          window.location.reload();
          return;
        }
      } catch (error) {
        if (text) text.textContent = `Could not read the progress (${error}); retrying…`;
      }
      setTimeout(tick, 1000);
    };
    tick();
  });
}

// Forms that change something important ask first: <form data-confirm="Start the experiment?">.
function confirmForms() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}

// Behaviours the templates ask for by attribute, since the Content-Security-Policy allows no inline handlers:
// <select data-autosubmit> submits its form when changed; <button data-print> prints the page.
function attributeBehaviours() {
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
  document.querySelectorAll("button[data-print]").forEach((button) => {
    button.addEventListener("click", () => window.print());
  });
}

document.addEventListener("DOMContentLoaded", () => {
  renderCharts();
  pollProgress();
  confirmForms();
  attributeBehaviours();
});
