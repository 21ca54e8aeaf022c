// The register form (templates/recommenders/variant_register.html), a static file so the pages' Content-Security-Policy
// allows no inline script.
  // Show each weight slider's value beside it while it moves.
  document.querySelectorAll("#hybrid-components input[type=range]").forEach((slider) => {
    const output = slider.parentElement.querySelector("output");
    slider.addEventListener("input", () => { output.value = slider.value; });
  });
