// The district office's day in the dashboard, in Debian's headless Chromium at 1366×768, against a
// real songpei-server holding the week that scripts/demo-week recorded through real phones:
// sign in, read the overview, open a class, accept a flag with a reason, reject the other from the
// review queue, work through the call-back list (a number shown and audited, a confirmation, three
// unanswered attempts, a denial that holds a class until the office decides it), read the
// per-coordinator signals, find a trainee and unmask her (audited), read the monthly report with
// its call-back figures, download the xlsx, switch to English. Run by scripts/test-web, which
// starts the server and the demo and sets SERVER_URL and DEMO_WEEK_ENV.
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
  if (!SHOTS) return;
  // The last action's notice fades by itself; the picture is of the page.
  await page.locator('#toast').waitFor({ state: 'hidden' });
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: !!fullPage });
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

// 电话回访: the server runs with `[callbacks] rate = 1.0`, so every payable trainee-day of the week
// is on the call list.

async function openCallIds() {
  return page.$$eval('#open-calls tbody tr', (trs) => trs.map((tr) => tr.dataset.callback));
}

// Waits for the call list to come back after an outcome: the row leaves the page while it reloads.
async function reloaded(id) {
  await page.locator(`#main tr[data-callback="${id}"]`).waitFor({ state: 'detached' });
  await page.locator('#page-callbacks').waitFor();
}

async function attemptsShown(id, n) {
  await page.waitForFunction(([id, n]) => {
    const cell = document.querySelector(`#open-calls tr[data-callback="${id}"] td.attempts`);
    return cell && cell.textContent === String(n);
  }, [id, n]);
}

async function closedCall(id) {
  await page.click('#callback-tabs a[data-tab=closed]');
  await page.locator('#closed-calls').waitFor();
  const row = page.locator(`#closed-calls tr[data-callback="${id}"]`);
  await row.waitFor();
  const cells = await row.locator('td').allTextContents();
  await page.click('#callback-tabs a[data-tab=open]');
  await page.locator('#page-callbacks[data-status=open]').waitFor();
  return cells.map((c) => c.trim());
}

test('the call list: every payable trainee-day of the week, oldest first, masked', async () => {
  await page.click('#nav a[data-page=callbacks]');
  await page.locator('#open-calls').waitFor();
  const list = await page.evaluate(() => fetch('/api/v1/callbacks?status=open').then((r) => r.json()));
  const days = await page.$$eval('#open-calls tbody tr', (trs) => trs.map((tr) => tr.dataset.day));
  assert.ok(days.length > 0, 'the list is not empty');
  assert.deepEqual(await openCallIds(), list.items.map((c) => c.id), 'the rows are the API\'s, in its order');
  assert.deepEqual(days, [...days].sort(), 'oldest first');
  // 大湾村 5 × 5 days (the card day far from the venue accepted), 六八村 3 × 3 less the rejected
  // one, 石卡村 2 on its first day.
  assert.equal(days.length, 25 + 8 + 2);
  assert.match(await page.textContent('#page-callbacks h1'), /电话回访 \(35\)/);
  const rows = await tableRows('#open-calls');
  for (const r of rows) {
    assert.match(r[3], /\*/, 'name masked');
    assert.match(r[4], /^\d{3}\*{4}\d{4}/, 'phone masked');
  }
  // The day accepted after its flag is always called; the others were drawn.
  assert.equal(rows.filter((r) => r[5] === '审核通过后必访').length, 1);
  assert.equal(rows.filter((r) => r[5] === '随机抽取').length, days.length - 1);
  assert.match(await page.textContent('#callbacks-hint'), /审计日志/);
});

test('a district viewer sees the call list without its buttons, and no audit log', async () => {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'zh-CN' });
  try {
    const viewer = await context.newPage();
    viewer.on('pageerror', (e) => problems.push('viewer page error: ' + e.message));
    viewer.on('console', (m) => { if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push('viewer console: ' + m.text()); });
    await viewer.goto(SERVER + '/');
    await viewer.fill('#login-user', demo.VIEWER_USER);
    await viewer.fill('#login-pass', demo.VIEWER_PASSWORD);
    await viewer.click('form.login button[type=submit]');
    await viewer.locator('#page-overview').waitFor();
    assert.equal(await viewer.locator('#nav a[data-page=audit]').count(), 0);
    await viewer.click('#nav a[data-page=callbacks]');
    await viewer.locator('#open-calls').waitFor();
    assert.equal(await viewer.locator('#open-calls tbody tr').count(), await page.locator('#open-calls tbody tr').count());
    assert.deepEqual(await viewer.$$eval('#open-calls thead th', (ths) => ths.map((th) => th.textContent)),
      ['日期', '班级', '村', '学员', '电话', '原因', '已拨次数']);
    assert.equal(await viewer.locator('#open-calls button, #open-calls input').count(), 0);
    await viewer.goto(SERVER + '/office/#/audit');
    await viewer.getByText('只有区县管理员可以查看审计日志').waitFor();
  } finally {
    await context.close();
  }
});

let confirmedCall;

test('a number is shown for one call; the audit log keeps it with its purpose and the call', async () => {
  const row = page.locator('#open-calls tbody tr').first();
  const id = await row.getAttribute('data-callback');
  const masked = (await row.locator('td.phone .mono').textContent()).trim();
  await row.locator('button.show-number').click();
  await row.locator('td.phone .number').waitFor();
  const number = (await row.locator('td.phone .number').textContent()).trim();
  assert.match(number, /^1\d{10}$/);
  assert.equal(number.slice(0, 3), masked.slice(0, 3));
  assert.equal(number.slice(-4), masked.slice(-4));
  assert.equal(await row.locator('td.phone .disclosed').textContent(), '已记入审计日志 · 用途：电话回访');
  // Nothing else in the cell (but a note when the number is on file for someone else too).
  assert.match((await row.locator('td.phone').textContent()).trim(), new RegExp(`^${number}已记入审计日志 · 用途：电话回访(号码另登记在 \\d+ 人名下)?$`));
  await shot('callbacks');
  // The API: one disclosure, by this account, for this call.
  const log = await page.evaluate(() => fetch('/api/v1/audit?action=disclose_phone').then((r) => r.json()));
  assert.equal(log.length, 1, JSON.stringify(log));
  assert.equal(log[0].actor, 'account:' + demo.OFFICE_USER);
  assert.deepEqual(log[0].detail, { purpose: 'callback', callback: id });
  // The audit page, filtered to disclosures.
  await page.click('#nav a[data-page=audit]');
  await page.locator('#audit-log').waitFor();
  await page.selectOption('#audit-action', 'disclose_phone');
  await page.click('#page-audit form button[type=submit]');
  await page.waitForFunction(() => {
    const trs = [...document.querySelectorAll('#audit-log tbody tr')];
    return trs.length > 0 && trs.every((tr) => tr.dataset.action === 'disclose_phone');
  });
  const rows = await tableRows('#audit-log');
  assert.equal(rows.length, 1);
  assert.equal(rows[0][1], 'account:' + demo.OFFICE_USER);
  assert.equal(rows[0][2], '显示回访电话');
  assert.equal(rows[0][3], log[0].subject, 'the trainee');
  assert.match(rows[0][4], /用途：电话回访/);
  assert.ok(rows[0][4].includes('回访编号 ' + id), rows[0][4]);
  confirmedCall = id;
});

test('确认: the call leaves the list and shows among the closed ones', async () => {
  await page.click('#nav a[data-page=callbacks]');
  await page.locator('#open-calls').waitFor();
  const id = confirmedCall;
  const row = page.locator(`#open-calls tr[data-callback="${id}"]`);
  await row.locator('input.call-note').fill('本人接听，确认当天到场上课');
  await row.locator('button[data-outcome=confirmed]').click();
  await reloaded(id);
  assert.ok(!(await openCallIds()).includes(id));
  const closed = await closedCall(id);
  assert.equal(closed[5], '1', 'attempts');
  assert.equal(closed[6], '确认');
  assert.equal(closed[7], '本人接听，确认当天到场上课');
  assert.equal(closed[8], demo.OFFICE_USER);
});

test('联系不上 three times: open after one and two, closed as unreachable after the third', async () => {
  const id = (await openCallIds())[0];
  for (const n of [1, 2, 3]) {
    const row = page.locator(`#open-calls tr[data-callback="${id}"]`);
    await row.locator('input.call-note').fill(`第${n}次拨打无人接听`);
    await row.locator('button[data-outcome=unreachable]').click();
    if (n < 3) {
      await page.locator('#toast', { hasText: `第 ${n} 次未接通` }).waitFor();
      await attemptsShown(id, n);
    } else {
      await reloaded(id);
    }
  }
  assert.ok(!(await openCallIds()).includes(id));
  const closed = await closedCall(id);
  assert.equal(closed[5], '3', 'attempts');
  assert.equal(closed[6], '联系不上');
  assert.equal(closed[7], '第3次拨打无人接听');
});

test('否认: after a warning, the day is rejected and the class waits in the review queue; accepting clears it', async () => {
  const row = page.locator('#open-calls tbody tr', { has: page.locator('td:text-is("石卡村")') }).first();
  const id = await row.getAttribute('data-callback');
  const [name, day] = [(await row.locator('td').nth(3).textContent()).trim(), await row.getAttribute('data-day')];
  await row.locator('button[data-outcome=denied]').click();
  const meaning = await page.textContent('#deny-meaning');
  assert.match(meaning, /驳回/);
  assert.match(meaning, /暂停计发/);
  assert.match(meaning, /待审核/);
  await page.fill('#deny-note', '学员称当天在外地务工，没有参加培训');
  await page.click('#deny-confirm');
  await reloaded(id);
  assert.ok(!(await openCallIds()).includes(id));
  assert.equal((await closedCall(id))[6], '否认');
  // The held class says so on its page, and waits for review: the overview counts it, the queue
  // shows it.
  await page.goto(SERVER + '/office/#/class/' + demo.CLASS_3);
  await page.locator('#page-class').waitFor();
  assert.match(await page.textContent('#class-held'), /暂停计发/);
  await page.click('#nav a[data-page=overview]');
  await page.locator('#page-overview').waitFor();
  assert.equal(await page.textContent('#pending-count'), '1');
  await page.click('#page-overview a.tile[href="#/review"]');
  await page.locator('#page-review').waitFor();
  const held = page.locator('#page-review tr[data-kind=hold]');
  assert.equal(await held.count(), 1);
  const cells = (await held.locator('td').allTextContents()).map((c) => c.trim());
  assert.equal(cells[0], '暂停计发');
  assert.equal(cells[1], '石卡村育婴员培训班');
  assert.equal(cells[2], '石卡村');
  assert.equal(cells[3], name);
  assert.equal(cells[4], day);
  const denial = await held.locator(`li[data-callback="${id}"]`).textContent();
  assert.ok(denial.includes('学员称当天在外地务工，没有参加培训'), denial);
  assert.ok(denial.includes(demo.OFFICE_USER), denial);
  // The dialog says what each decision means.
  await held.locator('button[data-decision=rejected]').click();
  assert.match(await page.textContent('#decide-meaning'), /该班全部记录不予计发/);
  await page.click('#dialog button:text("取消")');
  await held.locator('button[data-decision=accepted]').click();
  assert.match(await page.textContent('#decide-meaning'), /解除暂停.*其他记录恢复计发/);
  await page.locator('#decide-reason').fill('其他学员均已回访确认，解除暂停');
  await page.click('#decide-confirm');
  await page.getByText('没有待审核事项').waitFor();
  // The denied day stays rejected in the class, with the call named.
  await page.goto(SERVER + '/office/#/class/' + demo.CLASS_3);
  await page.locator('#page-class').waitFor();
  assert.equal(await page.locator('#class-held').count(), 0, 'the hold is cleared');
  const rejected = page.locator('#page-class .decided.rejected');
  assert.ok(await rejected.count() >= 1);
  assert.ok((await rejected.first().textContent()).includes(id));
});

test('协管员信号: a row per coordinator, the district median, the explanations; columns sort', async () => {
  await page.click('#nav a[data-page=signals]');
  await page.locator('#signals-table').waitFor();
  const s = await page.evaluate(() => fetch('/api/v1/signals').then((r) => r.json()));
  const accounts = () => page.$$eval('#signals-table tbody tr', (trs) => trs.map((tr) => tr.dataset.account));
  // demo-week makes two coordinators.
  assert.equal(s.coordinators.length, 2);
  assert.deepEqual((await accounts()).sort(), s.coordinators.map((c) => c.account).sort());
  const heads = (await page.$$eval('#signals-table thead th', (ths) => ths.map((th) => th.textContent)))
    .map((h) => h.replace(/[▲▼↕]/g, '').trim());
  assert.deepEqual(heads, ['协管员', '所管村', '记录数', ...s.signals.map((g) => g.label)]);
  // The median row.
  const medians = await page.$$eval('#signals-median td', (tds) => tds.map((td) => td.textContent.trim()));
  assert.deepEqual(medians, s.signals.map((g) => (g.median === null ? '—' : (g.median * 100).toFixed(1) + '%')));
  assert.match(await page.textContent('#signals-median th'), /区县中位数/);
  // Every explanation is on the page.
  const legend = await page.textContent('#signals-legend');
  for (const g of s.signals) assert.ok(legend.includes(g.label) && legend.includes(g.explanation), g.code);
  // The cells the API calls unusual are marked, among them the denial on 石卡村's coordinator.
  const unusual = s.coordinators.flatMap((c) => c.values.filter((v) => v.unusual).map((v) => c.account + ' ' + v.code));
  assert.ok(unusual.length > 0);
  assert.deepEqual((await page.$$eval('#signals-table td.unusual', (tds) => tds.map((td) => td.closest('tr').dataset.account + ' ' + td.dataset.code))).sort(),
    unusual.sort());
  const shikaCoordinator = s.coordinators.find((c) => c.villages.includes('石卡村'));
  assert.ok(shikaCoordinator.values.find((v) => v.code === 'denials').unusual);
  await shot('signals');
  // Sorting: by records, ascending then descending.
  const records = () => page.$$eval('#signals-table tbody tr', (trs) => trs.map((tr) => Number(tr.children[2].textContent.replace(/,/g, ''))));
  await page.click('#signals-table th[data-sort=records] button');
  await page.locator('#signals-table th[data-sort=records][aria-sort=ascending]').waitFor();
  const up = await records();
  assert.deepEqual(up, [...up].sort((a, b) => a - b));
  assert.match(await page.textContent('#signals-table th[data-sort=records]'), /▲/);
  const upOrder = await accounts();
  await page.click('#signals-table th[data-sort=records] button');
  await page.locator('#signals-table th[data-sort=records][aria-sort=descending]').waitFor();
  const down = await records();
  assert.deepEqual(down, [...down].sort((a, b) => b - a));
  assert.match(await page.textContent('#signals-table th[data-sort=records]'), /▼/);
  assert.notDeepEqual(await accounts(), upOrder, 'the order changed');
  // By a signal's share.
  await page.click('#signals-table th[data-sort=card_share] button');
  await page.locator('#signals-table th[data-sort=card_share][aria-sort=ascending]').waitFor();
  const shares = await page.$$eval('#signals-table td[data-code=card_share]', (tds) => tds.map((td) => Number(td.dataset.share)));
  assert.deepEqual(shares, [...shares].sort((a, b) => a - b));
  assert.equal(await page.locator('#signals-table th[aria-sort=none][data-sort=records]').count(), 1);
});

test('the monthly report\'s 电话回访 section agrees with the API', async () => {
  const month = demo.CLASS_1_MONTH;
  await page.goto(SERVER + '/office/#/report?month=' + month);
  await page.locator('#report-callbacks').waitFor();
  const r = await page.evaluate((q) => fetch('/api/v1/reports/monthly?' + q).then((x) => x.json()),
    'district=450802&month=' + month);
  const c = r.callbacks;
  assert.ok(c.called > 0 && c.called <= c.trainee_days, JSON.stringify(c));
  const pct = (f) => (f === null ? '—' : (f * 100).toFixed(1) + '%');
  const figures = Object.fromEntries(await page.$$eval('#report-callbacks [data-figure]',
    (divs) => divs.map((d) => [d.dataset.figure, d.querySelector('dd').textContent.trim()])));
  assert.deepEqual(figures, {
    trainee_days: c.trainee_days.toLocaleString('en-US'), called: c.called.toLocaleString('en-US'), rate: pct(c.rate),
    decided: String(c.decided), confirmed: String(c.confirmed), denied: String(c.denied),
    unreachable: String(c.unreachable), confirmation_rate: pct(c.confirmation_rate),
  });
  const labels = await page.textContent('#report-callbacks dl');
  for (const l of ['应回访人天', '抽中', '回访比例', '确认', '否认', '联系不上', '确认率']) assert.ok(labels.includes(l), l);
  const villages = await tableRows('#report-callback-villages');
  assert.deepEqual(villages, c.by_village.map((v) => [v.village_name, String(v.called), String(v.denied)]));
  // The denial on 石卡村, when its day falls in this month.
  const shika = c.by_village.find((v) => v.village_name === '石卡村');
  if (shika) assert.equal(shika.denied, 1);
});

test('the audit chain\'s head shows on the report and the overview, as the database holds it', async () => {
  // The report page shows the head the report was made at (making a report is itself audited, so
  // a report made after it ends later in the chain).
  const month = demo.CLASS_1_MONTH;
  await page.goto(SERVER + '/office/#/report?month=' + month);
  await page.locator('#audit-head').waitFor();
  const onReport = await page.$eval('#audit-head', (e) => ({ hash: e.dataset.hash, text: e.textContent }));
  const r = await page.evaluate((q) => fetch('/api/v1/reports/monthly?' + q).then((x) => x.json()),
    'district=450802&month=' + month);
  assert.match(onReport.hash, /^[0-9a-f]{64}$/);
  assert.notEqual(onReport.hash, r.audit_head.hash, 'the later report ends later in the chain');
  assert.ok(onReport.text.includes('审计链') && onReport.text.includes(onReport.hash.slice(0, 16)), onReport.text);
  // The overview audits nothing: the head it shows is the API's.
  await page.goto(SERVER + '/office/#/overview');
  await page.locator('#audit-head').waitFor();
  const o = await page.evaluate(() => fetch('/api/v1/overview').then((x) => x.json()));
  assert.equal(await page.$eval('#audit-head', (e) => e.dataset.hash), o.audit_head.hash);
  assert.match(o.audit_head.hash, /^[0-9a-f]{64}$/);
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
  assert.match(await page.textContent('#report-callbacks'), /Call-backs.*Payable trainee-days/);
  assert.equal(await page.textContent('#nav a[data-page=callbacks]'), 'Call-backs');
  assert.equal(await page.textContent('#nav a[data-page=signals]'), 'Coordinator signals');
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
