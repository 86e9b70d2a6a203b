/** The page's stylesheet (served as /assets/style.css): system fonts only, nothing fetched. */
export const PAGE_CSS = `
:root {
  --bg: #f6f7f9; --panel: #fff; --ink: #1d2430; --muted: #5b6676; --line: #dde2ea;
  --ok: #1a7f37; --ok-bg: #e6f4ea; --bad: #c62828; --bad-bg: #fdecea; --warn: #8a5a00;
  --warn-bg: #fff4d6; --accent: #2457c5;
  font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC",
    "PingFang SC", "Microsoft YaHei", sans-serif;
  color: var(--ink); background: var(--bg); font-size: 15px; line-height: 1.5;
}
body { margin: 0; }
header { display: flex; align-items: center; gap: 1rem; padding: .6rem 1.2rem;
  background: #1d2430; color: #fff; position: sticky; top: 0; z-index: 2; }
header h1 { font-size: 1.15rem; margin: 0; }
header .dir { color: #aeb8c7; font-size: .85rem; }
header .spacer { flex: 1; }
header button { background: transparent; color: #fff; border-color: #5b6676; }
header button[aria-pressed="true"] { background: #fff; color: #1d2430; }
main { display: grid; grid-template-columns: minmax(340px, 1fr) minmax(420px, 1.4fr);
  gap: 1rem; padding: 1rem 1.2rem; align-items: start; }
@media (max-width: 1000px) { main { grid-template-columns: 1fr; } }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
  padding: .8rem 1rem; margin-bottom: 1rem; }
section h2 { font-size: 1.05rem; margin: 0 0 .6rem; }
button { font: inherit; padding: .25rem .7rem; border-radius: 6px; border: 1px solid var(--line);
  background: #fff; cursor: pointer; }
button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
button:disabled { opacity: .5; cursor: default; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: .88em; }
pre { background: #f0f2f5; padding: .6rem .8rem; border-radius: 6px; overflow-x: auto; }
:not(pre) > code { background: #f0f2f5; padding: 0 .25rem; border-radius: 4px; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; padding: .25rem .4rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: .85rem; }
.vms { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: .6rem; }
.vm { border: 1px solid var(--line); border-radius: 8px; padding: .5rem .7rem; }
.vm h3 { margin: 0; font-size: 1rem; display: flex; gap: .4rem; align-items: center; }
.badge { display: inline-block; font-size: .75rem; padding: 0 .4rem; border-radius: 999px;
  background: #eef1f5; color: var(--muted); }
.ok { color: var(--ok); } .bad { color: var(--bad); }
.badge.ok { background: var(--ok-bg); } .badge.bad { background: var(--bad-bg); }
.badge.warn { background: var(--warn-bg); color: var(--warn); }
.chips { display: flex; flex-wrap: wrap; gap: .25rem; margin: .3rem 0; }
.copy { display: flex; gap: .3rem; align-items: center; margin-top: .3rem; }
.notice { background: var(--warn-bg); color: var(--warn); padding: .4rem .7rem;
  border-radius: 6px; margin: 0 0 .6rem; }
.verdict { padding: .5rem .8rem; border-radius: 6px; margin: .6rem 0; }
.verdict.pass { background: var(--ok-bg); color: var(--ok); }
.verdict.fail { background: var(--bad-bg); color: var(--bad); }
.verdict ul { margin: .3rem 0 0; color: var(--ink); }
.verdict .hint { color: var(--muted); margin: .3rem 0 0; }
.lesson-list { max-height: 19rem; overflow-y: auto; }
.lessons tr { cursor: pointer; } .lessons tr.selected { background: #eef3fd; }
.actions { display: flex; gap: .4rem; flex-wrap: wrap; margin: .5rem 0; }
.hints li { margin-bottom: .3rem; }
.activity { max-height: 16rem; overflow-y: auto; font-size: .85rem; }
.activity div { border-bottom: 1px dotted var(--line); padding: .1rem 0; }
article h1 { font-size: 1.3rem; } article h2 { font-size: 1.1rem; margin-top: 1.2rem; }
.muted { color: var(--muted); font-size: .85rem; }
.loading { padding: 2rem; color: var(--muted); }
`;
