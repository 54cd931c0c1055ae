"""A small accessibility audit run inside the page: form controls without a label,
buttons and links without a name, text below WCAG AA contrast, and a page wider than
the screen. Returns a list of problems, each one readable sentence."""

from __future__ import annotations

from playwright.sync_api import Page

_AUDIT_JS = r"""
() => {
  const problems = [];
  const visible = (el) =>
    el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const describe = (el) => el.outerHTML.slice(0, 120);
  for (const control of document.querySelectorAll("input, select, textarea")) {
    if (control.type === "hidden") continue;
    const named = control.labels.length > 0 || control.getAttribute("aria-label")
      || control.getAttribute("aria-labelledby");
    if (!named) problems.push(`control without a label: ${describe(control)}`);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!visible(el)) continue;
    const name = (el.getAttribute("aria-label") || el.textContent || "").trim();
    if (!name) problems.push(`button or link without a name: ${describe(el)}`);
  }
  const rgb = (text) => (text.match(/[\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const c = [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const [r, g, b, a = 1] = rgb(getComputedStyle(node).backgroundColor);
      if (a > 0.5) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode;
    const el = text.parentElement;
    const exempt = el.closest("[disabled], svg, .skip-link"); // inactive or decorative
    if (!text.textContent.trim() || !visible(el) || exempt) continue;
    const style = getComputedStyle(el);
    const [l1, l2] = [luminance(rgb(style.color)), luminance(background(el))];
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const large = parseFloat(style.fontSize) >= 24
      || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(`contrast ${ratio.toFixed(2)}:1 for "${text.textContent.trim().slice(0, 40)}"`);
    }
  }
  const overflow = document.documentElement.scrollWidth - window.innerWidth;
  if (overflow > 0) problems.push(`the page is ${overflow}px wider than the window`);
  return problems;
}
"""


def audit(page: Page) -> list[str]:
    """The problems found on ``page`` as it is now (empty when there are none)."""
    problems: list[str] = page.evaluate(_AUDIT_JS)
    return problems
