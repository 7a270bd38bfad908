"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const show = (v) => (v === null || v === undefined ? "–" : String(v));
// Shares, κ and seconds always with three decimals (1 is "1.000", not a count).
const num = (v) => (v === null || v === undefined ? null : v.toFixed(3));

function fill(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = show(c);  // text, never HTML: names are escaped by construction
      tr.appendChild(td);
    }
    return tr;
  }));
}

async function refresh() {
  const response = await fetch("/api/stats", { headers: { Authorization: "Bearer " + token },
                                               cache: "no-store" });
  const s = await response.json();
  if (!response.ok) { document.getElementById("status").textContent = s.error; return; }
  document.getElementById("summary").textContent =
    `${s.labels} labels · ${s.calibration_items} calibration items · pass threshold ${s.threshold}`;
  fill("annotators", s.annotators.map((a) => [a.annotator, a.labels, a.ties, a.skips,
    num(a.seconds_mean), num(a.seconds_median), a.calibration_labels,
    num(a.calibration_accuracy), a.passing ? "yes" : "no", num(a.oracle_agreement)]));
  fill("pairs", s.pairs.map((p) => [p.annotators.join(" · "), p.items, num(p.agreement),
    num(p.cohen_kappa)]));
  document.getElementById("fleiss").textContent = s.fleiss
    ? `Fleiss' κ over the ${s.fleiss.items} items every annotator labelled: ${show(num(s.fleiss.kappa))}` : "";
  document.body.dataset.loaded = "true";
}
refresh();
setInterval(refresh, 10000);
