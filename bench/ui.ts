/**
 * Benchmark and screenshots of `klab ui` on a real lab: page load with the lab's overview,
 * Check -> verdict, Verify from the page, the server's memory. With --screenshots DIR it
 * saves the lab view and a lesson in English and in Chinese (docs/images/ holds the ones
 * shown in the README). Prints figures; asserts nothing.
 *
 *   npm run build && node dist/bench/ui.js [LAB_DIR] [--lesson ID] [--verify] [--screenshots DIR]
 */
import path from 'node:path';
import { launchChromium, startUi } from '../test/helpers/browser.js';

const CLI = path.resolve(import.meta.dirname, '..', 'src', 'cli.js');
const args = process.argv.slice(2);
const option = (name: string) => {
  const index = args.indexOf(name);
  return index >= 0 ? args[index + 1] : undefined;
};
const LAB = args[0] && !args[0].startsWith('--') ? args[0] : '/var/tmp/klab-bench-lab';
const LESSON = option('--lesson') ?? 'etcd';
const SHOTS = option('--screenshots');

async function main(): Promise<void> {
  const ui = await startUi(LAB, CLI);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    page.on('dialog', (dialog) => void dialog.accept());
    let started = Date.now();
    await page.goto(ui.url);
    await page.getByTestId('vm-master').waitFor({ timeout: 120_000 });
    console.log(
      `page load to the lab's VMs shown: ${((Date.now() - started) / 1000).toFixed(2)} s`,
    );
    await page.getByTestId('lang-en').click();
    await page.getByTestId(`lesson-${LESSON}`).click();
    await page.getByTestId('lesson-text').waitFor();
    started = Date.now();
    await page.getByTestId('lesson-check').click();
    const verdict = page.getByTestId('verdict');
    await verdict.waitFor({ timeout: 600_000 });
    const passed = ((await verdict.getAttribute('class')) ?? '').includes('pass');
    console.log(
      `Check "${LESSON}" -> verdict (${passed ? 'pass' : 'fail'}): ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    if (args.includes('--verify')) {
      started = Date.now();
      await page.getByTestId('verify').click();
      await page.getByTestId('verify-result').waitFor({ timeout: 1_800_000 });
      console.log(
        `Verify from the page: ${((Date.now() - started) / 1000).toFixed(0)} s: ${await page.getByTestId('verify-result').locator('.verdict').textContent()}`,
      );
    }
    if (SHOTS) {
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: path.join(SHOTS, 'ui-lab.png') });
      await page.getByTestId('lesson-text').scrollIntoViewIfNeeded();
      await page.screenshot({ path: path.join(SHOTS, 'ui-lesson-en.png') });
      await page.getByTestId('lang-zh-CN').click();
      await page.waitForFunction(() =>
        /[\u4e00-\u9fff]{4}/.test(
          document.querySelector('[data-testid="lesson-text"]')?.textContent ?? '',
        ),
      );
      await page.getByTestId('lesson-text').scrollIntoViewIfNeeded();
      await page.screenshot({ path: path.join(SHOTS, 'ui-lesson-zh-CN.png') });
      await page.getByTestId('lang-en').click();
      console.log(`screenshots in ${SHOTS}`);
    }
    console.log(`klab ui server memory: ${(await ui.rssMiB()).toFixed(0)} MiB RSS`);
  } finally {
    await browser.close();
    const stopped = await ui.stop();
    console.log(`klab ui stopped with exit ${stopped.exitCode}`);
  }
}

await main();
