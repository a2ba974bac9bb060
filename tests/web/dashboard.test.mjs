// The district office's day in the dashboard, in Debian's headless Chromium at 1366×768, against a
// real songpei-server holding the week that scripts/demo-week recorded through real phones:
// sign in, read the overview, open a class, accept a flag with a reason, reject the other from the
// review queue, find a trainee and unmask her (audited), read the monthly report, download the
// xlsx, switch to English. Run by scripts/test-web, which starts the server and the demo and sets
// SERVER_URL and DEMO_WEEK_ENV.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync, existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

const SERVER = process.env.SERVER_URL;
const demo = Object.fromEntries(readFileSync(process.env.DEMO_WEEK_ENV, 'utf8').trim().split('\n')
  .map((line) => line.split(/=(.*)/s).slice(0, 2)));
const SHOTS = process.env.SCREENSHOTS || '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

let browser;
let page;
const problems = [];

before(async () => {
  assert.ok(existsSync(CHROMIUM), `Debian's chromium is not at ${CHROMIUM}`);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  // Row E4: the browser runs in another time zone; the dashboard still shows China's dates and times.
  const context = await browser.newContext({
    viewport: { width: 1366, height: 768 }, acceptDownloads: true, locale: 'zh-CN', timezoneId: 'America/Los_Angeles',
  });
  page = await context.newPage();
  // Any script error or refused load (a CSP violation shows as a console error) fails the run.
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  // (A refused request shows as a console error too; those the tests make on purpose are left out.)
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of (400|401)/.test(m.text())) {
      problems.push('console: ' + m.text());
    }
  });
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
});

async function shot(name, fullPage) {
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: !!fullPage });
}

function sumColumn(rows, index) {
  return rows.reduce((acc, r) => acc + Number(r[index].replace(/,/g, '')), 0);
}

async function tableRows(selector) {
  return page.$$eval(`${selector} tbody tr`, (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent.trim())));
}

test('a wrong password is refused, the right one signs in', async () => {
  const resp = await page.goto(SERVER + '/');
  assert.match(page.url(), /\/office\/$/);
  // Everything comes from this server: no CDN, no inline script.
  assert.match(resp.headers()['content-security-policy'], /default-src 'self'/);
  assert.match(resp.headers()['content-security-policy'], /script-src 'self';/);
  await page.fill('#login-user', demo.OFFICE_USER);
  await page.fill('#login-pass', 'not-the-password');
  await page.click('form.login button[type=submit]');
  await page.getByText('用户名或密码不正确').waitFor();
  await page.fill('#login-pass', demo.OFFICE_PASSWORD);
  await page.click('form.login button[type=submit]');
  await page.locator('#page-overview').waitFor();
  assert.equal(await page.textContent('#district-name'), '港北区');
});

test('the overview shows today\'s classes, targets and charts', async () => {
  const today = await tableRows('#today');
  const titles = today.map((r) => r[0]);
  assert.ok(titles.includes('大湾村电工培训班'), titles.join());
  assert.ok(titles.includes('六八村中式面点师培训班'), titles.join());
  const dawan = today.find((r) => r[0] === '大湾村电工培训班');
  assert.equal(dawan[4], '5', 'enrolled');
  assert.equal(dawan[5], '5', 'signed in today');
  // The year's target was imported by the demo; the tile shows it against progress.
  assert.match(await page.textContent('#page-overview .tiles'), /年度目标 1,000/);
  // Two charts, with bars.
  assert.equal(await page.locator('svg.chart').count(), 2);
  assert.ok(await page.locator('svg.chart rect.bar').count() > 10);
  // Two flags hold pay.
  assert.equal(await page.textContent('#pending-count'), '2');
  await shot('overview');
});

test('a class page shows the roster, the days, the allowance; a flag is accepted with a reason', async () => {
  await page.click('#page-overview a:text("大湾村电工培训班")');
  await page.locator('#page-class').waitFor();
  assert.equal(await page.textContent('#page-class h1'), '大湾村电工培训班');
  const roster = await tableRows('#roster');
  assert.equal(roster.length, 5);
  // Names and ID numbers are masked.
  for (const r of roster) {
    assert.match(r[0], /\*/, 'name masked');
    assert.match(r[1], /^\d{6}\*+\w{4}$|^\d{3,6}\*+/, 'id masked');
  }
  const headCount = 3;
  const days = 5;
  const payableCol = headCount + days;
  const before = sumColumn(roster, payableCol);
  // 5 trainees × 5 days, less the card scanned far from the venue.
  assert.equal(before, 24, JSON.stringify(roster));
  const held = page.locator('#page-class tr.held');
  assert.equal(await held.count(), 1);
  assert.match(await held.textContent(), /远离培训地点/);
  // The held day shows in the grid too.
  assert.equal(await page.locator('#roster td.cell.held').count(), 1);
  await shot('class', true);
  await held.locator('button[data-decision=accepted]').click();
  await page.locator('#decide-reason').fill('已电话核实：当天在镇卫生院体检后返回上课，刷卡位置为卫生院');
  await page.click('#decide-confirm');
  await page.locator('#toast.good').waitFor();
  await page.locator('#page-class .decided.accepted').waitFor();
  const after = await tableRows('#roster');
  assert.equal(sumColumn(after, payableCol), 25, 'the accepted day is payable now');
  // The allowance follows: 50 yuan a day for the poverty-household trainees only.
  const allowance = sumColumn(after, payableCol + 1);
  assert.ok(allowance > 0 && allowance % 50 === 0, String(allowance));
  assert.equal(await page.locator('#page-class tr.held').count(), 0);
});

test('the review queue: the other flag is rejected, the queue empties', async () => {
  await page.click('#nav a[data-page=review]');
  await page.locator('#page-review').waitFor();
  const rows = page.locator('#page-review tbody tr');
  assert.equal(await rows.count(), 1);
  assert.match(await rows.first().textContent(), /一部手机多人签到/);
  await rows.first().locator('button[data-decision=rejected]').click();
  // A reason of one character is refused by the server, and the dialog says why.
  await page.locator('#decide-reason').evaluate((t) => { t.removeAttribute('minlength'); });
  await page.locator('#decide-reason').fill('否');
  await page.click('#decide-confirm');
  await page.locator('#dialog .error:has-text("reason")').waitFor();
  await page.locator('#decide-reason').fill('同一部手机为三名学员签到，未能核实本人到场');
  await page.click('#decide-confirm');
  await page.getByText('没有待审核事项').waitFor();
});

test('a trainee is found by ID number, masked; unmasking asks for a reason', async () => {
  await page.click('#nav a[data-page=trainees]');
  await page.fill('#id-number', demo.TRAINEE_ID_NUMBER);
  await page.click('#page-trainees button[type=submit]');
  const hit = page.locator('#trainee-hits .hit');
  await hit.waitFor();
  const masked = await hit.locator('dl').textContent();
  assert.ok(!masked.includes(demo.TRAINEE_ID_NUMBER), 'masked until asked');
  assert.ok(!masked.includes('张秀英'));
  assert.match(await hit.locator('table').textContent(), /大湾村电工培训班/);
  await hit.locator('button.unmask').click();
  await page.fill('#unmask-reason', '核对生活费补贴发放名单');
  await page.click('#dialog button[type=submit]');
  await page.locator('#unmasked dl').waitFor();
  const shown = await page.textContent('#unmasked');
  assert.ok(shown.includes(demo.TRAINEE_ID_NUMBER));
  assert.ok(shown.includes('张秀英'));
  await page.click('#dialog button:text("关闭")');
});

test('the monthly report shows the month\'s figures and downloads as xlsx', async () => {
  const month = demo.CLASS_1_MONTH;
  await page.goto(SERVER + '/office/#/report?month=' + month);
  await page.locator('#page-report').waitFor();
  // Person-times: 4 passed in 大湾村 and 3 in 六八村, each counted in the month of its last day.
  const expected = (demo.CLASS_1_MONTH === month ? 4 : 0) + (demo.CLASS_2_MONTH === month ? 3 : 0);
  const tile = await page.textContent('#page-report .tiles .tile:first-child strong');
  assert.equal(tile, String(expected));
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-xlsx')]);
  assert.match(download.suggestedFilename(), /\.xlsx$/);
  const bytes = readFileSync(await download.path());
  assert.equal(bytes.subarray(0, 2).toString(), 'PK', 'an xlsx is a zip');
  assert.ok(bytes.length > 4000);
});

test('the English switch', async () => {
  await page.click('#lang');
  await page.locator('#nav a:text("Overview")').waitFor();
  assert.match(await page.textContent('#page-report h1'), /Monthly report/);
  await page.click('#nav a[data-page=overview]');
  await page.locator('#page-overview').waitFor();
  assert.match(await page.textContent('#page-overview .tiles'), /Person-times this month/);
  await page.click('#lang');
  await page.locator('#nav a:text("概览")').waitFor();
});

test('a trainee\'s personal data is erased on request; the ID number then finds no one', async () => {
  await page.click('#nav a[data-page=trainees]');
  await page.fill('#id-number', demo.TRAINEE_ID_NUMBER);
  await page.click('#page-trainees button[type=submit]');
  const hit = page.locator('#trainee-hits .hit');
  await hit.waitFor();
  await hit.locator('button.erase').click();
  await page.fill('#erase-reason', '删');
  await page.click('#dialog button[type=submit]');
  await page.locator('#dialog [role=alert]', { hasText: 'reason' }).waitFor();
  await page.fill('#erase-reason', '本人书面申请删除个人信息');
  await page.click('#dialog button[type=submit]');
  await page.locator('#trainee-hits .erased').waitFor();
  await page.click('#page-trainees button[type=submit]');
  await page.getByText('没有找到该身份证号的学员').waitFor();
});

test('no script error and no refused load on any page', () => {
  assert.deepEqual(problems, []);
});
