// The experiment wizard (templates/experiments/experiment_form.html), a static file so the pages' Content-Security-Policy
// allows no inline script.
// The power calculator: recompute the plan whenever a planning field changes.
(() => {
  const form = document.getElementById("experiment-form");
  const box = document.getElementById("power-calculator");
  const out = document.getElementById("plan-result");
  const value = (name) => form.elements[name] ? form.elements[name].value : "";
  // Answers can arrive out of order (one request per keystroke): only the newest request's answer is shown.
  let latest = 0;
  const update = async () => {
    const arms = [...form.querySelectorAll("select[name$='-variant']")].filter((s) => s.value).length;
    const params = new URLSearchParams({
      baseline_rate: value("baseline_rate"), minimum_detectable_effect: value("minimum_detectable_effect"),
      expected_daily_users: value("expected_daily_users"), traffic_percent: value("traffic_percent"),
      alpha: value("alpha"), power: value("power"), arms: Math.max(arms, 2), design: value("design"),
    });
    for (const [key, v] of [...params.entries()]) if (v === "") params.delete(key);
    if (!params.has("baseline_rate") || !params.has("minimum_detectable_effect")) return;
    const ticket = ++latest;
    const response = await fetch(`${box.dataset.planUrl}?${params}`);
    const plan = await response.json();
    if (ticket !== latest) return;
    if (!response.ok) {
      out.textContent = Object.values(plan.errors).flat().join(" ");
      out.className = "error";
      return;
    }
    const days = plan.days === null ? "Give the expected daily users to see the duration." :
      `At the expected traffic that takes about ${plan.days} day${plan.days === 1 ? "" : "s"}.`;
    out.className = "";
    if (plan.design === "interleaving") {
      // Interleaving is planned in sessions: every exposed request shows both arms' items.
      out.innerHTML = `<strong>${plan.sessions.toLocaleString()}</strong> sessions (interleaved lists), about ` +
        `${plan.decided.toLocaleString()} of them decided by a click, for the sign test to detect B winning ` +
        `${(plan.share_b * 100).toFixed(1)} % of decided sessions (baseline = share of sessions with a click). ${days}`;
      return;
    }
    out.innerHTML = `<strong>${plan.n_per_arm.toLocaleString()}</strong> users per arm ` +
      `(${plan.total_users.toLocaleString()} in total over ${plan.arms} arms) to detect a change from ` +
      `${(Number(value("baseline_rate")) * 100).toFixed(2)} % to ${(plan.treatment_rate * 100).toFixed(2)} %. ${days}`;
  };
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  update();
})();
