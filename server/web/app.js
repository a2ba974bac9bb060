// The district office's dashboard. Plain DOM, no framework, no outside files: every page is built
// from the JSON API under /api/v1 with text nodes only (nothing from the server is ever parsed as
// HTML). Chinese by default, English on the switch in the top bar.
'use strict';

const SVG_NS = 'http://www.w3.org/2000/svg';

// ---------------------------------------------------------------------------------------------
// Words

const WORDS = {
  zh: {
    brand: '送培', switchTo: 'English', logout: '退出', login: '登录', username: '用户名',
    password: '密码', loginTitle: '区县培训办公室登录', badCredentials: '用户名或密码不正确',
    notAllowed: '此账号不能登录区县后台', overview: '概览', classes: '培训班', trainees: '学员查询',
    review: '待审核', targets: '目标任务', report: '月报', date: '日期', show: '查看',
    todayClasses: '今日开班', personTimesMonth: '本月培训人次', personTimesYear: '本年培训人次',
    target: '年度目标', pendingReview: '待审核事项', noTarget: '未导入目标',
    township: '乡镇', village: '村', thisMonth: '本月', thisYear: '本年', title: '班级名称',
    status: '状态', enrolled: '报名', signedInToday: '今日签到', days: '培训日期', none: '无',
    progressChart: '年度进度（累计人次对比目标）', attendanceChart: '近30天每日签到',
    signedIn: '签到', payable: '计补', cumulative: '累计', monthly: '当月', all: '全部',
    from: '起', to: '止', filter: '筛选', occupation: '职业（工种）', openFlags: '待审核',
    level: '等级', trainingType: '培训类型', subsidised: '补贴性培训', yes: '是', no: '否',
    roster: '花名册与出勤', name: '姓名', idNumber: '身份证号', household: '户类型',
    payableDays: '计补天数', allowance: '生活费补贴（元）', subsidyRule: '补贴判定', completion: '结业',
    records: '考勤记录', time: '时间', kind: '类型', method: '方式', proof: '凭证', flags: '预警',
    decision: '审核结果', accept: '通过', reject: '驳回', reason: '理由', cancel: '取消',
    confirm: '确定', acceptTitle: '通过该事项', rejectTitle: '驳回该事项',
    reasonHint: '请填写理由（2–500字），将记入文档并同步到村里的手机。', conflicts: '数据冲突',
    path: '字段', winner: '当前值', values: '各方的值', lookup: '按身份证号查询', find: '查询',
    unmask: '查看完整信息', unmaskTitle: '查看完整个人信息', unmaskHint:
      '查看身份证号、姓名、电话需说明用途（至少4个字），此次查看将记入审计日志。',
    erase: '删除个人信息', eraseTitle: '删除该学员的个人信息', eraseHint:
      '姓名、身份证号、电话等将立即从服务器删除，各村手机下次同步时删除，无法恢复。考勤和补贴记录以匿名编号保留。请填写依据（至少4个字），将记入审计日志。',
    erased: '已删除该学员的个人信息。',
    phone: '电话', close: '关闭', noHits: '没有找到该身份证号的学员', reviewEmpty: '没有待审核事项',
    flag: '预警', conflict: '冲突', class: '班级', day: '日期', trainee: '学员', item: '事项',
    viewerOnly: '只有区县管理员可以审核', region: '区域', year: '年份', personTimes: '人次',
    importTargets: '导入目标任务表（CSV）', importHint:
      '表头为“区域,三年计划总目标,2019年,2020年,2021年”的表格，另存为 CSV（UTF-8）后上传；有错误时整表不导入。',
    upload: '导入', imported: '已导入 {n} 条目标', row: '行', problem: '问题', month: '月份',
    downloadXlsx: '下载 Excel', downloadCsv: '下载 CSV',
    byTrainingType: '按培训类型', byKeyGroup: '按重点群体', byOccupation: '按职业（工种）',
    byTownship: '按乡镇', povertyHouseholds: '其中脱贫（监测）户学员', allowanceTotal: '生活费补贴合计',
    allowanceTrainees: '享受补贴人数', places: '名额', subsidyDecisions: '补贴判定',
    yuan: '元',     saved: '已保存', counted: '计入人次',     backToClasses: '返回培训班列表', loading: '加载中…', error: '出错了', sessionEnded:
      '登录已过期，请重新登录', notFound: '没有这个页面', firstDay: '开班', lastDay: '结业',
    valid: '有效', invalid: '无效', unchecked: '未核验', openApi: '接口说明',
    legendIn: '签到', legendOut: '签到并签退', legendPayable: '计补', legendHeld: '未计补',
    callbacks: '电话回访', signals: '协管员信号', audit: '审计日志', openCalls: '待回访',
    closedCalls: '最近已回访', callReason: '原因', attempts: '已拨次数', actions: '操作',
    outcome: '结果', note: '备注', clerk: '回访人', decidedAt: '回访时间', showNumber: '显示号码',
    callsEmpty: '没有待回访的电话', closedEmpty: '还没有已回访的电话',
    callsHint: '请按顺序拨打，问学员当天是否到场参加培训。显示号码只为这一通回访，每次显示都记入审计日志（用途：电话回访）。',
    disclosed: '已记入审计日志 · 用途：电话回访', noPhone: '未登记电话', notePlaceholder: '备注（可不填）',
    denyTitle: '记录为否认？', denyHint:
      '学员否认当天参加培训：该学员当天的全部考勤记录将被驳回，所在培训班暂停计发，整班进入待审核，由区县决定是否恢复。',
    unreachableOnce: '已记录第 {n} 次未接通；三次未接通即记为联系不上。',
    onHold: '回访否认，暂停计发',
    auditHead: '审计链：共 {n} 条，末条哈希 {hash}',
    closedAsUnreachable: '三次未接通，已记为联系不上。', recorded: '已记录：{o}',
    coordinator: '协管员', villages: '所管村', recordCount: '记录数', districtMedian: '区县中位数',
    allMonths: '全部月份', signalsHint:
      '每位协管员的记录中看起来像常见问题的比例，与全区县的中位数对照。信号不是结论，只提示先核实哪里、先回访谁。',
    unusualNote: '高亮：不低于区县中位数的 {n} 倍，且明显高于中位数。', timesMedian: '中位数的 {n} 倍',
    sortBy: '按此列排序', signalsEmpty: '还没有协管员账号',
    hold: '暂停计发', holdBadge: '回访否认', holdAcceptMeaning:
      '通过：解除暂停，该班其他记录恢复计发（被否认当天的记录仍不计发）。',
    holdRejectMeaning: '驳回：该班全部记录不予计发。',
    traineeDays: '应回访人天', called: '抽中', callRate: '回访比例', decided: '已有结果',
    confirmationRate: '确认率', denialsByVillage: '各村回访与否认', denials: '否认',
    action: '操作类型', actor: '操作人', subject: '对象', detail: '详情', purpose: '用途',
    callId: '回访编号', latest: '最近 {n} 条', items: '{n} 项', explanations: '各信号的含义',
    auditAdminsOnly: '只有区县管理员可以查看审计日志',
    classHeld: '有学员在电话回访中否认当天参训（{n} 次）：该班暂停计发，等区县审核决定。',
    noteStays: '备注只保存在服务器上，不同步到村里的手机；培训班记录里只写明回访编号。',
    phoneShared: '号码另登记在 {n} 人名下', phoneSharedHint:
      '同一号码也登记在其他人名下（可能是家人的或协管员的），接电话的不一定是学员本人。',
  },
  en: {
    brand: 'songpei', switchTo: '中文', logout: 'Sign out', login: 'Sign in', username: 'Username',
    password: 'Password', loginTitle: 'District training office', badCredentials:
      'Wrong username or password', notAllowed: 'This account cannot sign in to the district office',
    overview: 'Overview', classes: 'Classes', trainees: 'Trainees', review: 'Review',
    targets: 'Targets', report: 'Monthly report', date: 'Date', show: 'Show',
    todayClasses: 'Classes today', personTimesMonth: 'Person-times this month', personTimesYear:
      'Person-times this year', target: 'Target', pendingReview:
      'Waiting for review', noTarget: 'no target imported', township: 'Township', village: 'Village',
    thisMonth: 'Month', thisYear: 'Year', title: 'Class', status: 'Status', enrolled: 'Enrolled',
    signedInToday: 'Signed in today', days: 'Days', none: 'None', progressChart:
      'This year (cumulative person-times against target)', attendanceChart:
      'Sign-ins per day, last 30 days', signedIn: 'Signed in', payable: 'Payable', cumulative:
      'Cumulative', monthly: 'In month', all: 'All', from: 'From', to: 'To', filter: 'Filter',
    occupation: 'Occupation', openFlags: 'To review', level: 'Level', trainingType: 'Training type',
    subsidised: 'Subsidised training', yes: 'yes', no: 'no', roster: 'Roster and attendance',
    name: 'Name', idNumber: 'ID number', household: 'Household', payableDays: 'Payable days',
    allowance: 'Allowance (yuan)', subsidyRule: 'Subsidy', completion: 'Completion',
    records: 'Attendance records', time: 'Time', kind: 'Kind', method: 'Method', proof: 'Proof',
    flags: 'Flags', decision: 'Decision', accept: 'Accept', reject: 'Reject', reason: 'Reason',
    cancel: 'Cancel', confirm: 'Confirm', acceptTitle: 'Accept this item', rejectTitle:
      'Reject this item', reasonHint:
      'Give a reason (2–500 characters). It is written into the document and syncs to the village phones.',
    conflicts: 'Conflicts', path: 'Field', winner: 'Current value', values: 'Values written',
    lookup: 'Find by ID number', find: 'Find', unmask: 'Show in full', unmaskTitle:
      'Show personal data in full', unmaskHint:
      'Say why you need the ID number, name and phone (at least 4 characters). This is kept in the audit log.',
    erase: 'Erase personal data', eraseTitle: 'Erase this trainee\'s personal data', eraseHint:
      'Name, ID number and phone go from the server now and from the village phones at their next sync; this cannot be undone. Attendance and subsidy records stay under an anonymous id. Give the grounds (at least 4 characters); they are kept in the audit log.',
    erased: 'The trainee\'s personal data was erased.',
    phone: 'Phone', close: 'Close', noHits: 'No trainee has this ID number', reviewEmpty:
      'Nothing waits for review', flag: 'Flag', conflict: 'Conflict', class: 'Class', day: 'Day',
    trainee: 'Trainee', item: 'Item', viewerOnly: 'Only a district admin may decide',
    region: 'Region', year: 'Year', personTimes: 'Person-times', importTargets:
      'Import the target table (CSV)', importHint:
      'A table headed "区域,三年计划总目标,2019年,2020年,2021年", saved as CSV (UTF-8). If any row is wrong, nothing is imported.',
    upload: 'Import', imported: '{n} targets imported', row: 'Row', problem: 'Problem',
    month: 'Month', downloadXlsx: 'Download Excel',
    downloadCsv: 'Download CSV', byTrainingType: 'By training type', byKeyGroup: 'By key group',
    byOccupation: 'By occupation', byTownship: 'By township', povertyHouseholds:
      'of them from poverty households', allowanceTotal: 'Living allowance', allowanceTrainees:
      'Trainees paid', places: 'Places', subsidyDecisions: 'Subsidy decisions',     yuan: 'yuan', saved: 'Saved',
    counted: 'Counted',     backToClasses: 'Back to classes', loading: 'Loading…', error: 'Something went wrong',
    sessionEnded: 'Your session has ended; sign in again', notFound: 'No such page',
    firstDay: 'First day', lastDay: 'Last day', valid: 'valid', invalid: 'invalid', unchecked:
      'not checked', openApi: 'API description', legendIn: 'signed in',
    legendOut: 'signed in and out', legendPayable: 'payable', legendHeld: 'not payable',
    callbacks: 'Call-backs', signals: 'Coordinator signals', audit: 'Audit log', openCalls: 'To call',
    closedCalls: 'Recently closed', callReason: 'Why', attempts: 'Attempts', actions: 'Actions',
    outcome: 'Outcome', note: 'Note', clerk: 'Clerk', decidedAt: 'When', showNumber: 'Show number',
    callsEmpty: 'No calls to make', closedEmpty: 'No call has been closed yet',
    callsHint:
      'Call in this order and ask whether the trainee was at the class that day. A number is shown for this call only; each time is kept in the audit log (purpose: call-back).',
    disclosed: 'Kept in the audit log · purpose: call-back', noPhone: 'no phone on file',
    notePlaceholder: 'Note (optional)', denyTitle: 'Record a denial?', denyHint:
      'The trainee says they were not there: every record of that trainee-day is rejected, and the whole class is held (none of its records are paid) until the office decides it in the review queue.',
    unreachableOnce: 'No answer recorded (attempt {n}); the third unanswered attempt closes the call as unreachable.',
    onHold: 'held after a call-back denial',
    auditHead: 'Audit chain: {n} entries, last hash {hash}',
    closedAsUnreachable: 'Three unanswered attempts: closed as unreachable.', recorded: 'Recorded: {o}',
    coordinator: 'Coordinator', villages: 'Villages', recordCount: 'Records',
    districtMedian: 'District median', allMonths: 'All months', signalsHint:
      'For each coordinator, the share of records that look like the known problems, against the district\'s median. A signal is not a finding: it says where to look first, and whom to call back first.',
    unusualNote: 'Highlighted: at least {n} times the district median, and clearly above it.',
    timesMedian: '{n} × median', sortBy: 'Sort by this column', signalsEmpty: 'No coordinator accounts yet',
    hold: 'Class held', holdBadge: 'Denied on a call-back', holdAcceptMeaning:
      'Accept: the hold is cleared and the class\'s other records are paid again (the denied day stays unpaid).',
    holdRejectMeaning: 'Reject: no record of this class is paid.',
    traineeDays: 'Payable trainee-days', called: 'Drawn', callRate: 'Share called', decided: 'With an outcome',
    confirmationRate: 'Confirmed share', denialsByVillage: 'Calls and denials by village', denials: 'Denied',
    action: 'Action', actor: 'By', subject: 'Subject', detail: 'Detail', purpose: 'Purpose',
    callId: 'Call', latest: 'latest {n}', items: '{n} items', explanations: 'What each signal counts',
    auditAdminsOnly: 'Only a district admin may read the audit log',
    classHeld: 'A trainee denied being there on a call-back ({n}): the class is held, and none of its records are paid until the office decides it.',
    noteStays: 'The note stays on the server and never reaches the village phones; the class\'s records name only the call.',
    phoneShared: 'also on file for others: {n}', phoneSharedHint:
      'The same number is on file for other people too (a relative\'s, or the coordinator\'s): whoever answers may not be the trainee.',
  },
};

// Codes the API sends, in both languages.
const CODES = {
  status: {
    planned: ['计划中', 'planned'], running: ['进行中', 'running'], closed: ['已结业', 'closed'],
    cancelled: ['已取消', 'cancelled'],
  },
  flag: {
    invalid_proof: ['凭证无效', 'invalid proof'], replayed: ['重复使用的签到码', 'replayed code'],
    time_unverified: ['时间无法核实', 'time not verified'], outside_hours:
      ['不在上课时间', 'outside class hours'], two_venues: ['同日两地签到', 'two venues in a day'],
    phone_many_trainees: ['一部手机多人签到', 'one phone, many trainees'], far_from_venue:
      ['远离培训地点', 'far from the venue'], too_fast: ['签到过快', 'too fast'],
    clock_mismatch: ['手机时钟偏差', 'phone clock off'],
    unregistered_key: ['学员手机未登记', 'trainee phone not registered'],
    relayed: ['签到码疑被转发', 'class code relayed'],
    card_unwitnessed: ['签到卡无讲师复核', 'card without an instructor'],
  },
  kind: { in: ['签到', 'sign-in'], out: ['签退', 'sign-out'] },
  method: { qr: ['扫码', 'QR'], hand: ['手工补录', 'by hand'], card: ['签到卡', 'card'] },
  completion: { passed: ['合格', 'passed'], failed: ['不合格', 'failed'], absent: ['缺考', 'absent'] },
  poverty: {
    lifted: ['脱贫户', 'lifted out of poverty'], monitored: ['监测户', 'monitored'], dibao:
      ['低保户', 'minimum subsistence'], extreme_hardship: ['特困', 'extreme hardship'], ordinary:
      ['一般户', 'ordinary'],
  },
  level: {
    special_ability: ['专项能力', 'special ability'], junior: ['初级工', 'junior'], intermediate:
      ['中级工', 'intermediate'], senior: ['高级工', 'senior'], technician: ['技师', 'technician'],
    senior_technician: ['高级技师', 'senior technician'],
  },
  training_type: {
    employment_skills: ['就业技能培训', 'employment skills'], job_skills_upgrade:
      ['岗位技能提升培训', 'job skills upgrade'], entrepreneurship: ['创业培训', 'entrepreneurship'],
    project_based: ['项目制培训', 'project-based'], work_as_training: ['以工代训', 'work as training'],
    apprenticeship: ['企业新型学徒制', 'apprenticeship'],
  },
  decision: {
    subsidised: ['享受补贴', 'subsidised'], class_not_subsidised: ['非补贴性培训', 'class not subsidised'],
    class_cancelled: ['培训班已取消', 'class cancelled'],
    year_cap_reached: ['超过年度3次上限', 'over the 3-a-year cap'], same_occupation_and_level:
      ['同职业同等级已补贴', 'same occupation and level already subsidised'], accepted:
      ['通过', 'accepted'], rejected: ['驳回', 'rejected'],
  },
  outcome: {
    confirmed: ['确认', 'confirmed'], denied: ['否认', 'denied'], unreachable: ['联系不上', 'unreachable'],
    erased: ['学员信息已删除', 'trainee erased'],
  },
  call_reason: { sample: ['随机抽取', 'drawn at random'], flag_accepted: ['审核通过后必访', 'accepted after a flag'] },
  purpose: { callback: ['电话回访', 'call-back'] },
  action: {
    disclose_phone: ['显示回访电话', 'phone shown for a call'], callback: ['电话回访结果', 'call-back outcome'],
    read_personal: ['查看个人信息', 'personal data read'], lookup_trainee: ['查询学员', 'trainee lookup'],
    erase_personal: ['删除个人信息', 'personal data erased'], review: ['审核', 'review'],
    report: ['月报', 'monthly report'], import_targets: ['导入目标任务', 'targets imported'],
    login: ['登录', 'sign-in'], enroll: ['手机注册', 'phone enrolled'], write: ['手机同步写入', 'phone write'],
    device_revoke: ['停用手机', 'phone revoked'], refused_revoked: ['拒绝已停用手机', 'revoked phone refused'],
    account_add: ['新增账号', 'account added'], account_villages: ['账号所管村', 'account villages'],
    village_add: ['新增村', 'village added'], enrollment_code: ['注册码', 'enrolment code'],
    issue_cards: ['打印签到卡', 'cards issued'], rotate_card_key: ['更换签到卡密钥', 'card key rotated'],
    init: ['初始化', 'set up'],
  },
  // The server names and explains each signal in Chinese; these are the English.
  signal: {
    card_share: ['刷卡签到占比', 'Card sign-ins',
      'Of the sign-ins this coordinator recorded, the share taken with a printed card rather than the trainee\'s phone. One person can scan every card, so a high share needs checking.'],
    unregistered_key: ['未登记手机签到占比', 'Unregistered phones',
      'Of the QR sign-ins, the share answered by a trainee phone key that no instructor witnessed in person (flag unregistered_key).'],
    relayed: ['异地应答占比', 'Answered far away',
      'Of the QR sign-ins, the share answered more than 1 km from the phone showing the class code (flag relayed): the code may have been passed on.'],
    fresh_keys: ['当天新密钥占比', 'Keys new that day',
      'Of the trainee phone keys in this coordinator\'s sign-ins, the share first seen by the system (registered or answering) on the day they first answered. A high share means phones mostly set up on the spot.'],
    shared_phone: ['共用号码学员占比', 'Shared phone numbers',
      'Of the trainees this coordinator signed in, the share whose registered phone number is also registered to someone else. If the number is the coordinator\'s own, or one person\'s, a call-back cannot reach the trainee.'],
    held: ['待审记录占比', 'Records held',
      'Of this coordinator\'s records, the share held for review by any flag that blocks pay.'],
    denials: ['回访否认占比', 'Denied on call-backs',
      'Of the call-backs with an outcome, the share where the trainee denied being at the class that day.'],
  },
};

let lang = localStorage.getItem('songpei.lang') === 'en' ? 'en' : 'zh';
let me = null;

function t(key, vars) {
  let s = (WORDS[lang] && WORDS[lang][key]) || WORDS.zh[key] || key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replace('{' + k + '}', String(v));
  return s;
}

function code(group, value, fallback) {
  if (value === null || value === undefined || value === '') return '';
  const pair = CODES[group] && CODES[group][value];
  if (pair) return pair[lang === 'en' ? 1 : 0];
  return fallback || value;
}

// ---------------------------------------------------------------------------------------------
// DOM helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function table(headers, rows, opts) {
  return el('table', { class: (opts && opts.class) || 'grid', id: opts && opts.id },
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: headers.length, class: 'empty' }, t('none')))));
}

function num(n) {
  return Number(n || 0).toLocaleString(lang === 'en' ? 'en-US' : 'zh-CN');
}

function yuan(fen) {
  return (Number(fen || 0) / 100).toLocaleString(lang === 'en' ? 'en-US' : 'zh-CN',
    { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function percent(f) {
  return f === null || f === undefined ? '—' : (f * 100).toFixed(1) + '%';
}

function timeOf(ms) {
  if (ms === null || ms === undefined) return '';
  // China time, whatever the office PC's zone.
  const d = new Date(Number(ms) + 8 * 3600 * 1000);
  return d.toISOString().slice(0, 16).replace('T', ' ');
}

function todayChina() {
  return new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
}

function toast(message, bad) {
  const box = document.getElementById('toast');
  box.textContent = message;
  box.className = bad ? 'bad' : 'good';
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, bad ? 8000 : 3000);
}

// ---------------------------------------------------------------------------------------------
// The API

class ApiFailure extends Error {
  constructor(status, body) {
    super((body && body.message) || ('HTTP ' + status));
    this.status = status;
    this.code = body && body.code;
    this.field = body && body.field;
    this.problems = body && body.problems;
  }
}

async function api(path, opts) {
  const init = Object.assign({ credentials: 'same-origin', headers: {} }, opts || {});
  if (init.json !== undefined) {
    init.body = JSON.stringify(init.json);
    init.headers['content-type'] = 'application/json';
    delete init.json;
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!resp.ok) {
    const failure = new ApiFailure(resp.status, body);
    if (resp.status === 401 && !path.endsWith('/login')) {
      me = null;
      showLogin(failure.code === 'session_expired' ? t('sessionEnded') : null);
    }
    throw failure;
  }
  return body;
}

function explain(err) {
  if (err instanceof ApiFailure) return err.field ? err.field + ': ' + err.message : err.message;
  return t('error');
}

// ---------------------------------------------------------------------------------------------
// Frame: top bar, navigation, routing

const PAGES = [
  ['overview', () => pageOverview()],
  ['classes', () => pageClasses()],
  ['review', () => pageReview()],
  ['callbacks', () => pageCallbacks()],
  ['signals', () => pageSignals()],
  ['trainees', () => pageTrainees()],
  ['report', () => pageReport()],
  ['targets', () => pageTargets()],
  ['audit', () => pageAudit(), 'admin'],
];

function isAdmin() {
  return Boolean(me && me.role === 'district_admin');
}

function frame() {
  document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
  document.title = (lang === 'en' ? 'songpei · district office' : '送培 · 区县办公室');
  document.getElementById('brand-name').textContent = t('brand');
  document.getElementById('district-name').textContent = me ? me.district.name : '';
  document.getElementById('lang').textContent = t('switchTo');
  const out = document.getElementById('logout');
  out.textContent = t('logout');
  out.hidden = !me;
  document.getElementById('who').textContent = me ? me.username : '';
  const nav = document.getElementById('nav');
  nav.hidden = !me;
  nav.replaceChildren(...PAGES.filter(([, , who]) => who !== 'admin' || isAdmin()).map(([name]) => el('a', {
    href: '#/' + name, 'data-page': name,
    class: currentPage() === name || (name === 'classes' && currentPage() === 'class') ? 'on' : null,
  }, t(name))), el('a', { href: '/api/openapi.json', class: 'small' }, t('openApi')));
}

function currentPage() {
  const h = location.hash.replace(/^#\/?/, '');
  return h.split(/[/?]/)[0] || 'overview';
}

function hashParams() {
  const q = location.hash.split('?')[1] || '';
  return new URLSearchParams(q);
}

async function route() {
  if (!me) return;
  frame();
  const main = document.getElementById('main');
  main.replaceChildren(el('p', { class: 'muted' }, t('loading')));
  const page = currentPage();
  try {
    let content;
    if (page === 'class') {
      content = await pageClass(decodeURIComponent(location.hash.split('/')[2] || '').split('?')[0]);
    } else {
      const found = PAGES.find(([name]) => name === page);
      content = found ? await found[1]() : el('p', {}, t('notFound'));
    }
    main.replaceChildren(content);
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 401) return;
    main.replaceChildren(el('p', { class: 'error' }, t('error') + ': ' + explain(err)));
  }
}

function showLogin(notice) {
  frame();
  const user = el('input', { name: 'username', autocomplete: 'username', required: true, id: 'login-user' });
  const pass = el('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, id: 'login-pass' });
  const msg = el('p', { class: 'error', role: 'alert' }, notice || '');
  const form = el('form', {
    class: 'login', onsubmit: async (e) => {
      e.preventDefault();
      msg.textContent = '';
      try {
        me = await api('/api/v1/login', { method: 'POST', json: { username: user.value, password: pass.value } });
        if (!location.hash || location.hash === '#/login') location.hash = '#/overview';
        route();
      } catch (err) {
        msg.textContent = err.code === 'bad_credentials' ? t('badCredentials')
          : err.code === 'not_allowed' ? t('notAllowed') : explain(err);
      }
    },
  },
  el('h1', {}, t('loginTitle')),
  el('label', { for: 'login-user' }, t('username')), user,
  el('label', { for: 'login-pass' }, t('password')), pass,
  el('button', { type: 'submit', class: 'primary' }, t('login')), msg);
  document.getElementById('main').replaceChildren(form);
  user.focus();
}

// ---------------------------------------------------------------------------------------------
// Charts

function progressChart(months, target) {
  const W = 560, H = 220, L = 48, B = 28, T = 14, R = 12;
  const maxY = Math.max(1, target || 0, ...months.map((m) => m.cumulative));
  const x = (i) => L + (i + 0.5) * ((W - L - R) / Math.max(1, months.length));
  const y = (v) => H - B - (v / maxY) * (H - B - T);
  const bw = Math.max(6, ((W - L - R) / Math.max(1, months.length)) * 0.5);
  const parts = [svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis' })];
  for (const v of [0, maxY / 2, maxY]) {
    parts.push(svg('text', { x: L - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, num(Math.round(v))));
  }
  months.forEach((m, i) => {
    parts.push(svg('rect', {
      x: x(i) - bw / 2, y: y(m.person_times), width: bw, height: Math.max(0, H - B - y(m.person_times)),
      class: 'bar',
    }, svg('title', {}, m.month + ' ' + t('monthly') + ' ' + m.person_times)));
    parts.push(svg('text', { x: x(i), y: H - 10, class: 'tick', 'text-anchor': 'middle' }, m.month.slice(5)));
  });
  if (months.length) {
    parts.push(svg('polyline', {
      points: months.map((m, i) => x(i) + ',' + y(m.cumulative)).join(' '), class: 'line',
    }));
    months.forEach((m, i) => parts.push(svg('circle', { cx: x(i), cy: y(m.cumulative), r: 3, class: 'dot' },
      svg('title', {}, m.month + ' ' + t('cumulative') + ' ' + m.cumulative))));
  }
  if (target) {
    parts.push(svg('line', { x1: L, y1: y(target), x2: W - R, y2: y(target), class: 'target' }));
    parts.push(svg('text', { x: W - R, y: y(target) - 4, class: 'tick', 'text-anchor': 'end' }, t('target') + ' ' + num(target)));
  }
  return figure(t('progressChart'), svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': t('progressChart') }, parts),
    [['bar', t('monthly')], ['line', t('cumulative')], ['target', t('target')]]);
}

function attendanceChart(days) {
  const W = 560, H = 220, L = 36, B = 28, T = 14, R = 12;
  const maxY = Math.max(1, ...days.map((d) => d.signed_in));
  const step = (W - L - R) / Math.max(1, days.length);
  const y = (v) => H - B - (v / maxY) * (H - B - T);
  const parts = [svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis' })];
  for (const v of [0, maxY]) {
    parts.push(svg('text', { x: L - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, num(v)));
  }
  days.forEach((d, i) => {
    const x0 = L + i * step + step * 0.15;
    const w = step * 0.7;
    parts.push(svg('rect', { x: x0, y: y(d.signed_in), width: w, height: H - B - y(d.signed_in), class: 'bar' },
      svg('title', {}, d.day + ' ' + t('signedIn') + ' ' + d.signed_in + ' / ' + t('payable') + ' ' + d.payable)));
    parts.push(svg('rect', { x: x0 + w * 0.25, y: y(d.payable), width: w * 0.5, height: H - B - y(d.payable), class: 'bar2' }));
    if (i % 5 === 4 || i === days.length - 1) {
      parts.push(svg('text', { x: x0 + w / 2, y: H - 10, class: 'tick', 'text-anchor': 'middle' }, d.day.slice(5)));
    }
  });
  return figure(t('attendanceChart'), svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': t('attendanceChart') }, parts),
    [['bar', t('signedIn')], ['bar2', t('payable')]]);
}

function figure(caption, chart, legend) {
  return el('figure', { class: 'card' }, el('figcaption', {}, caption), chart,
    el('div', { class: 'legend' }, legend.map(([cls, label]) => el('span', {}, el('i', { class: 'key ' + cls }), label))));
}

// ---------------------------------------------------------------------------------------------
// Overview

async function pageOverview() {
  const params = hashParams();
  const date = params.get('date') || '';
  const o = await api('/api/v1/overview' + (date ? '?date=' + encodeURIComponent(date) : ''));
  const picker = el('input', { type: 'date', value: o.date, id: 'overview-date' });
  const tiles = el('div', { class: 'tiles' },
    tile(t('todayClasses'), num(o.today.length), o.date),
    tile(t('personTimesMonth'), num(o.month.person_times), o.month.month),
    tile(t('personTimesYear'), num(o.year.person_times),
      o.year.target ? t('target') + ' ' + num(o.year.target) + ' · ' + percent(o.year.progress) : t('noTarget'),
      o.year.progress),
    el('a', { href: '#/review', class: 'tile' + (o.pending_review ? ' warn' : '') },
      el('span', { class: 'label' }, t('pendingReview')), el('strong', { id: 'pending-count' }, num(o.pending_review))));
  const today = table([t('title'), t('village'), t('township'), t('status'), t('enrolled'), t('signedInToday'), t('days')],
    o.today.map((c) => el('tr', {},
      el('td', {}, el('a', { href: '#/class/' + encodeURIComponent(c.class_id) }, c.title)),
      el('td', {}, c.village_name), el('td', {}, c.township_name), el('td', {}, code('status', c.status)),
      el('td', { class: 'n' }, num(c.enrolled)), el('td', { class: 'n' }, num(c.signed_in_today)),
      el('td', {}, c.first_day + ' – ' + c.last_day))), { id: 'today' });
  const places = [];
  for (const tw of o.by_township) {
    places.push(el('tr', { class: 'group' }, el('td', {}, tw.name), el('td', {}, ''),
      el('td', { class: 'n' }, num(tw.person_times_month)), el('td', { class: 'n' }, num(tw.person_times_year))));
    for (const v of tw.villages) {
      places.push(el('tr', {}, el('td', {}, ''), el('td', {}, v.name),
        el('td', { class: 'n' }, num(v.person_times_month)), el('td', { class: 'n' }, num(v.person_times_year))));
    }
  }
  return el('section', { class: 'page', id: 'page-overview' },
    el('div', { class: 'head' }, el('h1', {}, t('overview'), ' · ', o.district.name),
      el('form', {
        class: 'inline', onsubmit: (e) => { e.preventDefault(); location.hash = '#/overview?date=' + picker.value; },
      }, el('label', { for: 'overview-date' }, t('date')), picker, el('button', { type: 'submit' }, t('show')))),
    tiles,
    el('div', { class: 'two' }, progressChart(o.progress_by_month, o.year.target), attendanceChart(o.attendance_by_day)),
    el('div', { class: 'two' },
      el('div', { class: 'card' }, el('h2', {}, t('todayClasses')), today),
      el('div', { class: 'card' }, el('h2', {}, t('personTimes')),
        table([t('township'), t('village'), t('thisMonth'), t('thisYear')], places, { id: 'by-place' }))),
    auditHeadLine(o.audit_head));
}

// The audit chain's head, as each monthly report prints it: a history rewritten later no longer
// ends here.
function auditHeadLine(h) {
  return h ? el('p', { class: 'muted audit-head', id: 'audit-head', 'data-hash': h.hash },
    t('auditHead', { n: num(h.entries), hash: h.hash.slice(0, 16) + '…' })) : null;
}

function tile(label, value, note, fraction) {
  return el('div', { class: 'tile' }, el('span', { class: 'label' }, label), el('strong', {}, value),
    note ? el('span', { class: 'note' }, note) : null,
    fraction !== undefined && fraction !== null
      ? el('progress', { max: 1, value: Math.min(1, fraction) }) : null);
}

// ---------------------------------------------------------------------------------------------
// Classes

async function pageClasses() {
  const p = hashParams();
  const q = new URLSearchParams();
  for (const k of ['status', 'from', 'to']) if (p.get(k)) q.set(k, p.get(k));
  const list = await api('/api/v1/classes' + (q.toString() ? '?' + q : ''));
  const status = el('select', { id: 'class-status' }, el('option', { value: '' }, t('all')),
    Object.keys(CODES.status).map((s) => el('option', { value: s, selected: p.get('status') === s }, code('status', s))));
  const from = el('input', { type: 'date', value: p.get('from') || '', id: 'class-from' });
  const to = el('input', { type: 'date', value: p.get('to') || '', id: 'class-to' });
  const filter = el('form', {
    class: 'inline', onsubmit: (e) => {
      e.preventDefault();
      const n = new URLSearchParams();
      if (status.value) n.set('status', status.value);
      if (from.value) n.set('from', from.value);
      if (to.value) n.set('to', to.value);
      location.hash = '#/classes' + (n.toString() ? '?' + n : '');
    },
  }, el('label', { for: 'class-status' }, t('status')), status, el('label', { for: 'class-from' }, t('from')), from,
  el('label', { for: 'class-to' }, t('to')), to, el('button', { type: 'submit' }, t('filter')));
  return el('section', { class: 'page', id: 'page-classes' },
    el('div', { class: 'head' }, el('h1', {}, t('classes')), filter),
    el('div', { class: 'card' }, table([t('title'), t('township'), t('village'), t('occupation'), t('status'), t('firstDay'), t('lastDay'), t('enrolled'), t('openFlags')],
      list.map((c) => el('tr', {},
        el('td', {}, el('a', { href: '#/class/' + encodeURIComponent(c.class_id) }, c.title)),
        el('td', {}, c.township_name), el('td', {}, c.village_name), el('td', {}, c.occupation),
        el('td', {}, code('status', c.status)), el('td', {}, c.first_day), el('td', {}, c.last_day),
        el('td', { class: 'n' }, num(c.enrolled)),
        el('td', { class: 'n' }, c.open_flags ? el('span', { class: 'badge warn' }, num(c.open_flags)) : '0',
          c.on_hold ? el('span', { class: 'badge warn', title: t('onHold') }, t('onHold')) : ''))))));
}

async function pageClass(id) {
  const [page, queue] = await Promise.all([api('/api/v1/classes/' + encodeURIComponent(id)), api('/api/v1/review')]);
  const c = page.class;
  const hold = queue.items.find((i) => i.kind === 'hold' && i.class_id === id);
  const names = {};
  for (const r of page.trainees) names[r.trainee_id] = r.name_masked || r.trainee_id.slice(0, 8);
  const facts = el('dl', { class: 'facts' },
    fact(t('township'), c.township_name), fact(t('village'), c.village_name),
    fact(t('occupation'), c.occupation), fact(t('level'), code('level', c.level, c.level_label)),
    fact(t('trainingType'), code('training_type', c.training_type, c.training_type_label)),
    fact(t('subsidised'), c.subsidised ? t('yes') : t('no')),
    fact(t('status'), code('status', c.status, c.status_label)),
    fact(t('days'), c.first_day + ' – ' + c.last_day + ' (' + c.days.length + ')'));
  const dayHeads = c.days.map((d) => el('th', { class: 'day', title: d }, d.slice(5)));
  const roster = el('table', { class: 'grid roster', id: 'roster' },
    el('thead', {}, el('tr', {}, el('th', {}, t('name')), el('th', {}, t('idNumber')), el('th', {}, t('household')),
      dayHeads, el('th', {}, t('payableDays')), el('th', {}, t('allowance')), el('th', {}, t('subsidyRule')),
      el('th', {}, t('completion')))),
    el('tbody', {}, page.trainees.map((r) => el('tr', {},
      el('td', {}, r.name_masked || '—'), el('td', { class: 'mono' }, r.id_masked || '—'),
      el('td', {}, code('poverty', r.poverty_status, r.poverty_label)),
      c.days.map((d) => dayCell(r.days[d], Boolean(r.days[d] && r.days[d].held))),
      el('td', { class: 'n' }, num(r.payable_days)), el('td', { class: 'n' }, yuan(r.allowance_fen)),
      el('td', { class: 'rule' }, r.subsidy ? el('span', { title: r.subsidy.rule }, code('decision', r.subsidy.decision), el('br'), el('small', {}, r.subsidy.rule)) : '—'),
      el('td', {}, code('completion', r.completion))))));
  const legend = el('div', { class: 'legend' },
    el('span', {}, el('i', { class: 'cell in' }), t('legendIn')), el('span', {}, el('i', { class: 'cell out' }), t('legendOut')),
    el('span', {}, el('i', { class: 'cell pay' }), t('legendPayable')), el('span', {}, el('i', { class: 'cell held' }), t('legendHeld')));
  const records = table([t('day'), t('trainee'), t('kind'), t('method'), t('time'), t('proof'), t('payable'), t('flags'), t('decision')],
    page.attendance.map((a) => el('tr', { 'data-attendance': a.attendance_id, class: a.flags.some((f) => f.blocks_pay) && !a.review ? 'held' : null },
      el('td', {}, a.day), el('td', {}, names[a.trainee_id] || '—'), el('td', {}, code('kind', a.kind)),
      el('td', {}, code('method', a.method)), el('td', { class: 'mono' }, timeOf(a.corrected_ms || a.at_ms)),
      el('td', {}, a.proof_valid === null || a.proof_valid === undefined ? t('unchecked') : a.proof_valid ? t('valid') : t('invalid')),
      el('td', {}, a.payable ? t('yes') : t('no')),
      el('td', {}, flagBadges(a.flags)),
      el('td', {}, a.review ? reviewNote(a.review)
        : a.flags.some((f) => f.blocks_pay) ? decideButtons(page.class.id, a.attendance_id, () => route()) : ''))));
  const parts = [
    el('div', { class: 'head' }, el('h1', {}, c.title), el('a', { href: '#/classes' }, t('backToClasses'))),
    hold ? el('p', { class: 'notice warn', id: 'class-held' }, t('classHeld', { n: num(hold.denials.length) }), ' ',
      el('a', { href: '#/review' }, t('review'))) : null,
    el('div', { class: 'card' }, facts),
    el('div', { class: 'card' }, el('h2', {}, t('roster')), legend, el('div', { class: 'scroll' }, roster)),
    el('div', { class: 'card' }, el('h2', {}, t('records')), records),
  ];
  if (page.conflicts.length) {
    parts.push(el('div', { class: 'card' }, el('h2', {}, t('conflicts')),
      table([t('path'), t('winner'), t('values'), t('decision')], page.conflicts.map((x) => el('tr', {},
        el('td', { class: 'mono' }, x.path), el('td', {}, x.winner), el('td', {}, x.values.join(' / ')),
        el('td', {}, x.review ? reviewNote(x.review) : decideButtons(x.doc_id, 'conflict:' + x.path, () => route())))))));
  }
  return el('section', { class: 'page', id: 'page-class' }, parts);
}

function fact(label, value) {
  return el('div', {}, el('dt', {}, label), el('dd', {}, value));
}

function dayCell(d, held) {
  if (held && !d.signed_in && !d.signed_out) return el('td', { class: 'cell held', title: t('legendHeld') }, '!');
  if (!d) return el('td', { class: 'cell' }, '');
  const cls = ['cell', d.signed_out ? 'out' : d.signed_in ? 'in' : '', d.payable ? 'pay' : 'held'].join(' ');
  const mark = d.signed_out ? '✔' : d.signed_in ? '✓' : '·';
  return el('td', { class: cls, title: (d.payable ? t('legendPayable') : t('legendHeld')) }, mark);
}

function flagBadges(flags) {
  return flags.map((f) => el('span', {
    class: 'badge ' + (f.blocks_pay ? 'warn' : 'info'), title: f.detail,
  }, code('flag', f.flag)));
}

function reviewNote(r) {
  return el('span', { class: 'decided ' + r.decision, title: r.reviewer + ' · ' + timeOf(r.at_ms) },
    code('decision', r.decision), '：', r.reason);
}

function decideButtons(docId, subject, after, holds) {
  const admin = me && me.role === 'district_admin';
  const b = (decision) => el('button', {
    type: 'button', class: decision === 'accepted' ? 'ok' : 'no', disabled: !admin,
    title: admin ? null : t('viewerOnly'), 'data-decision': decision,
    onclick: () => decideDialog(docId, subject, decision, after, holds),
  }, decision === 'accepted' ? t('accept') : t('reject'));
  return el('span', { class: 'buttons' }, b('accepted'), b('rejected'));
}

function decideDialog(docId, subject, decision, after, holds) {
  const reason = el('textarea', { id: 'decide-reason', rows: 3, maxlength: 500, required: true, minlength: 2 });
  const msg = el('p', { class: 'error', role: 'alert' });
  openDialog(el('form', {
    method: 'dialog', onsubmit: async (e) => {
      e.preventDefault();
      msg.textContent = '';
      try {
        // A held class is decided for the denials shown, and refused if another arrived meanwhile.
        await api('/api/v1/review', { method: 'POST', json: { doc_id: docId, subject, decision, reason: reason.value, holds } });
        closeDialog();
        toast(t('saved'));
        after();
      } catch (err) {
        msg.textContent = explain(err);
      }
    },
  },
  el('h2', {}, decision === 'accepted' ? t('acceptTitle') : t('rejectTitle')),
  subject === 'hold' ? el('p', { class: 'meaning ' + decision, id: 'decide-meaning' },
    decision === 'accepted' ? t('holdAcceptMeaning') : t('holdRejectMeaning')) : null,
  el('p', { class: 'muted' }, t('reasonHint')),
  el('label', { for: 'decide-reason' }, t('reason')), reason, msg,
  el('div', { class: 'buttons' }, el('button', { type: 'button', onclick: closeDialog }, t('cancel')),
    el('button', { type: 'submit', class: 'primary', id: 'decide-confirm' }, t('confirm')))));
  reason.focus();
}

function openDialog(content) {
  const d = document.getElementById('dialog');
  d.replaceChildren(content);
  if (!d.open) d.showModal();
}

function closeDialog() {
  const d = document.getElementById('dialog');
  if (d.open) d.close();
  d.replaceChildren();
}

// ---------------------------------------------------------------------------------------------
// Review queue

async function pageReview() {
  const q = await api('/api/v1/review');
  const lines = (items) => items.map((x, n) => [n ? el('br') : null, x]);
  const rows = q.items.map((i) => el('tr', { 'data-subject': i.subject, 'data-kind': i.kind, class: i.kind === 'hold' ? 'hold' : null },
    el('td', {}, i.kind === 'flag' ? t('flag') : i.kind === 'hold' ? el('span', { class: 'badge warn' }, t('hold')) : t('conflict')),
    el('td', {}, i.class_id ? el('a', { href: '#/class/' + encodeURIComponent(i.class_id) }, i.class_title || i.class_id) : (i.doc_kind || i.doc_id)),
    el('td', {}, i.village_name),
    i.kind === 'hold'
      ? [el('td', {}, lines(i.denials.map((d) => d.name_masked || '—'))), el('td', {}, lines(i.denials.map((d) => d.day)))]
      : [el('td', {}, i.name_masked || ''), el('td', {}, i.day || '')],
    el('td', {}, i.kind === 'flag' ? flagBadges(i.flags)
      : i.kind === 'hold' ? el('ul', { class: 'denials' }, (i.denials || []).map(denialLine))
        : el('span', {}, el('span', { class: 'mono' }, i.path), ' → ', i.winner, ' (', i.values.join(' / '), ')')),
    el('td', {}, decideButtons(i.doc_id, i.subject, () => route(),
      i.kind === 'hold' ? i.denials.map((d) => d.callback_id) : undefined))));
  return el('section', { class: 'page', id: 'page-review' },
    el('div', { class: 'head' }, el('h1', {}, t('review'), ' (', num(q.items.length), ')')),
    el('div', { class: 'card' }, q.items.length
      ? table([t('item'), t('class'), t('village'), t('trainee'), t('day'), t('flags'), t('decision')], rows)
      : el('p', { class: 'muted' }, t('reviewEmpty'))));
}

// One denial that holds a class: who, which day, what the clerk noted, and who called.
function denialLine(d) {
  return el('li', { 'data-callback': d.callback_id },
    el('span', { class: 'badge warn' }, t('holdBadge')), ' ', d.name_masked || '—', ' · ', d.day,
    d.note ? [' · ', el('q', {}, d.note)] : null,
    el('small', { class: 'muted' }, ' · ', t('clerk'), ' ', d.decided_by || '—', ' · ', timeOf(d.held_ms)));
}

// ---------------------------------------------------------------------------------------------
// Call-backs

async function pageCallbacks() {
  const closed = hashParams().get('status') === 'closed';
  const list = await api('/api/v1/callbacks?status=' + (closed ? 'closed' : 'open'));
  const tabs = el('nav', { class: 'tabs', id: 'callback-tabs' },
    el('a', { href: '#/callbacks', class: closed ? null : 'on', 'data-tab': 'open' }, t('openCalls')),
    el('a', { href: '#/callbacks?status=closed', class: closed ? 'on' : null, 'data-tab': 'closed' }, t('closedCalls')));
  return el('section', { class: 'page', id: 'page-callbacks', 'data-status': closed ? 'closed' : 'open' },
    el('div', { class: 'head' }, el('h1', {}, t('callbacks'), closed ? null : [' (', num(list.items.length), ')']), tabs),
    closed ? null : el('p', { class: 'notice', id: 'callbacks-hint' }, t('callsHint')),
    el('div', { class: 'card' }, closed ? closedCalls(list.items) : openCalls(list.items)));
}

function callCells(c) {
  return [
    el('td', { class: 'day' }, c.day),
    el('td', {}, el('a', { href: '#/class/' + encodeURIComponent(c.class_id) }, c.class_title || c.class_id)),
    el('td', { title: c.township_name }, c.village_name),
    el('td', {}, c.name_masked || '—'),
  ];
}

function openCalls(items) {
  const admin = isAdmin();
  const headers = [t('date'), t('class'), t('village'), t('trainee'), t('phone'), t('callReason'), t('attempts')];
  if (admin) headers.push(t('actions'));
  if (!items.length) return el('p', { class: 'muted' }, t('callsEmpty'));
  return table(headers, items.map((c) => {
    // A number on file for other people too may not reach this trainee.
    const shared = c.phone_shared_with > 0
      ? el('span', { class: 'badge warn shared', title: t('phoneSharedHint') }, t('phoneShared', { n: num(c.phone_shared_with) })) : null;
    const phone = el('td', { class: 'phone' }, el('span', { class: 'mono' }, c.phone_masked || t('noPhone')));
    if (admin && c.phone_masked) {
      phone.append(' ', el('button', {
        type: 'button', class: 'show-number', onclick: (e) => disclosePhone(c, phone, e.target, shared),
      }, t('showNumber')));
    }
    if (shared) append(phone, [el('br'), shared]);
    return el('tr', { 'data-callback': c.id, 'data-day': c.day },
      callCells(c), phone,
      el('td', {}, el('span', { class: 'badge ' + (c.reason === 'flag_accepted' ? 'warn' : 'info') }, code('call_reason', c.reason))),
      el('td', { class: 'n attempts' }, num(c.attempts)),
      admin ? el('td', { class: 'call-actions' }, outcomeForm(c)) : null);
  }), { id: 'open-calls' });
}

function closedCalls(items) {
  if (!items.length) return el('p', { class: 'muted' }, t('closedEmpty'));
  return table([t('date'), t('class'), t('village'), t('trainee'), t('callReason'), t('attempts'), t('outcome'), t('note'), t('clerk'), t('decidedAt')],
    items.map((c) => el('tr', { 'data-callback': c.id, 'data-outcome': c.outcome },
      callCells(c), el('td', {}, code('call_reason', c.reason)), el('td', { class: 'n attempts' }, num(c.attempts)),
      el('td', {}, el('span', { class: 'outcome ' + c.outcome }, code('outcome', c.outcome))),
      el('td', { class: 'note' }, c.note || ''), el('td', {}, c.decided_by || ''),
      el('td', { class: 'mono' }, timeOf(c.decided_ms)))), { id: 'closed-calls' });
}

// Shows the number for this one call; the server keeps the disclosure, with its purpose, in the
// audit log.
async function disclosePhone(c, cell, button, shared) {
  button.disabled = true;
  try {
    const r = await api('/api/v1/callbacks/' + encodeURIComponent(c.id) + '/phone', { method: 'POST' });
    cell.replaceChildren();
    append(cell, [el('span', { class: 'mono number' }, r.phone || t('noPhone')), el('br'),
      el('small', { class: 'disclosed' }, t('disclosed')), shared ? [el('br'), shared] : null]);
  } catch (err) {
    button.disabled = false;
    toast(explain(err), true);
    if (err instanceof ApiFailure && err.status === 409) route();
  }
}

function outcomeForm(c) {
  const note = el('input', {
    class: 'call-note', maxlength: 500, placeholder: t('notePlaceholder'), 'aria-label': t('note'), autocomplete: 'off',
  });
  const b = (outcome, cls) => el('button', {
    type: 'button', class: cls, 'data-outcome': outcome,
    onclick: (e) => (outcome === 'denied' ? denyDialog(c, note.value) : recordOutcome(c, outcome, note.value, e.target.closest('.buttons'))),
  }, code('outcome', outcome));
  return el('div', { class: 'outcome-form' }, note,
    el('span', { class: 'buttons' }, b('confirmed', 'ok'), b('denied', 'no'), b('unreachable', '')));
}

async function recordOutcome(c, outcome, note, buttons) {
  const controls = buttons ? [...buttons.querySelectorAll('button')] : [];
  for (const x of controls) x.disabled = true;
  try {
    const r = await api('/api/v1/callbacks/' + encodeURIComponent(c.id), { method: 'POST', json: { outcome, note } });
    if (outcome === 'unreachable') toast(r.closed_as ? t('closedAsUnreachable') : t('unreachableOnce', { n: r.attempts }));
    else toast(t('recorded', { o: code('outcome', outcome) }));
    route();
    return true;
  } catch (err) {
    for (const x of controls) x.disabled = false;
    toast(explain(err), true);
    if (err instanceof ApiFailure && err.status === 409) route();
    return false;
  }
}

function denyDialog(c, noteText) {
  const note = el('textarea', { id: 'deny-note', rows: 3, maxlength: 500 });
  note.value = noteText || '';
  const msg = el('p', { class: 'error', role: 'alert' });
  openDialog(el('form', {
    method: 'dialog', onsubmit: async (e) => {
      e.preventDefault();
      msg.textContent = '';
      try {
        await api('/api/v1/callbacks/' + encodeURIComponent(c.id), { method: 'POST', json: { outcome: 'denied', note: note.value } });
        closeDialog();
        toast(t('recorded', { o: code('outcome', 'denied') }));
        route();
      } catch (err) {
        msg.textContent = explain(err);
      }
    },
  },
  el('h2', {}, t('denyTitle')),
  el('p', {}, el('strong', {}, c.name_masked || '—'), ' · ', c.day, ' · ', c.class_title || c.class_id, ' · ', c.village_name),
  el('p', { class: 'meaning rejected', id: 'deny-meaning' }, t('denyHint')),
  el('label', { for: 'deny-note' }, t('note')), note, el('p', { class: 'muted' }, t('noteStays')), msg,
  el('div', { class: 'buttons' }, el('button', { type: 'button', onclick: closeDialog }, t('cancel')),
    el('button', { type: 'submit', class: 'no', id: 'deny-confirm' }, code('outcome', 'denied')))));
  note.focus();
}

// ---------------------------------------------------------------------------------------------
// Coordinator signals

// A signal's name and what it counts: the server's Chinese, or the catalogue's English.
function signalText(s) {
  const en = lang === 'en' && CODES.signal[s.code];
  return en ? { label: en[1], explanation: en[2] } : { label: s.label, explanation: s.explanation };
}

async function pageSignals() {
  const month = hashParams().get('month') || '';
  const s = await api('/api/v1/signals' + (month ? '?month=' + encodeURIComponent(month) : ''));
  const picker = el('input', { type: 'month', value: month, id: 'signals-month' });
  const filter = el('form', {
    class: 'inline', onsubmit: (e) => {
      e.preventDefault();
      location.hash = '#/signals' + (picker.value ? '?month=' + picker.value : '');
    },
  }, el('label', { for: 'signals-month' }, t('month')), picker, el('button', { type: 'submit' }, t('show')),
  month ? el('a', { href: '#/signals' }, t('allMonths')) : null);
  const texts = s.signals.map(signalText);
  const columns = [
    { key: 'account', label: t('coordinator'), value: (c) => c.account },
    { key: 'villages', label: t('villages'), value: (c) => c.villages.join('、') },
    { key: 'records', label: t('recordCount'), value: (c) => c.records },
  ].concat(s.signals.map((g, i) => ({
    key: g.code, label: texts[i].label, title: texts[i].explanation, value: (c) => (c.values[i] ? c.values[i].share : null),
  })));
  const sort = { key: null, dir: 1 };
  const head = el('tr');
  const body = el('tbody');
  const render = () => {
    head.replaceChildren(...columns.map((col) => {
      const on = sort.key === col.key;
      return el('th', {
        'data-sort': col.key, class: 'sortable' + (col.key === 'account' || col.key === 'villages' ? '' : ' n'),
        'aria-sort': on ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none', title: col.title || null,
      }, el('button', {
        type: 'button', class: 'sort', title: t('sortBy'),
        onclick: () => {
          if (sort.key === col.key) sort.dir = -sort.dir;
          else { sort.key = col.key; sort.dir = 1; }
          render();
        },
      }, col.label, el('span', { class: 'arrow' + (on ? ' on' : '') }, on ? (sort.dir > 0 ? '▲' : '▼') : '↕')));
    }));
    let rows = s.coordinators.slice();
    if (sort.key) {
      const col = columns.find((x) => x.key === sort.key);
      rows.sort((a, b) => compareValues(col.value(a), col.value(b), sort.dir));
    }
    body.replaceChildren(...(rows.length ? rows.map((c) => el('tr', { 'data-account': c.account },
      el('td', { class: 'mono' }, c.account), el('td', {}, c.villages.join('、')), el('td', { class: 'n' }, num(c.records)),
      c.values.map((v) => signalCell(v)))) : [el('tr', {}, el('td', { colspan: columns.length, class: 'empty' }, t('signalsEmpty')))]));
  };
  render();
  const medians = el('tfoot', {}, el('tr', { class: 'median', id: 'signals-median' },
    el('th', { colspan: 3 }, t('districtMedian')),
    s.signals.map((g) => el('td', { class: 'n', 'data-code': g.code }, percent(g.median)))));
  return el('section', { class: 'page', id: 'page-signals' },
    el('div', { class: 'head' }, el('h1', {}, t('signals'), s.month ? ' · ' + s.month : ''), filter),
    el('p', { class: 'muted' }, t('signalsHint')),
    el('div', { class: 'card' }, el('div', { class: 'scroll' },
      el('table', { class: 'grid signals', id: 'signals-table' }, el('thead', {}, head), body, medians)),
    el('p', { class: 'legend' }, el('span', {}, el('i', { class: 'key unusual' }), t('unusualNote', { n: num(s.unusual_times) })))),
    el('div', { class: 'card' }, el('h2', {}, t('explanations')), el('dl', { class: 'explanations', id: 'signals-legend' },
      s.signals.map((g, i) => el('div', { 'data-code': g.code }, el('dt', {}, texts[i].label), el('dd', {}, texts[i].explanation))))));
}

// Ascending by dir = 1, descending by -1; a missing value goes last either way.
function compareValues(a, b, dir) {
  const none = (v) => v === null || v === undefined;
  if (none(a) || none(b)) return none(a) === none(b) ? 0 : none(a) ? 1 : -1;
  const c = typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b), 'zh-CN');
  return c * dir;
}

function signalCell(v) {
  return el('td', {
    class: 'n signal' + (v.unusual ? ' unusual' : ''), 'data-code': v.code,
    'data-share': v.share === null || v.share === undefined ? '' : v.share,
  },
  el('strong', {}, percent(v.share)), el('br'), el('small', {}, num(v.count), '/', num(v.of)),
  v.unusual && v.times_median ? [el('br'), el('small', { class: 'times' }, t('timesMedian', { n: v.times_median.toFixed(1) }))] : null);
}

// ---------------------------------------------------------------------------------------------
// Trainee lookup

async function pageTrainees() {
  const input = el('input', { id: 'id-number', maxlength: 18, size: 22, autocomplete: 'off', class: 'mono', spellcheck: 'false' });
  const out = el('div', { id: 'trainee-hits' });
  const form = el('form', {
    class: 'inline', onsubmit: async (e) => {
      e.preventDefault();
      out.replaceChildren(el('p', { class: 'muted' }, t('loading')));
      try {
        const hits = await api('/api/v1/trainees/search', { method: 'POST', json: { id_number: input.value.trim() } });
        out.replaceChildren(hits.length ? el('div', { class: 'card' }, hits.map(traineeCard)) : el('p', { class: 'muted' }, t('noHits')));
      } catch (err) {
        out.replaceChildren(el('p', { class: 'error' }, explain(err)));
      }
    },
  }, el('label', { for: 'id-number' }, t('idNumber')), input, el('button', { type: 'submit', class: 'primary' }, t('find')));
  return el('section', { class: 'page', id: 'page-trainees' },
    el('div', { class: 'head' }, el('h1', {}, t('lookup'))), el('div', { class: 'card' }, form), out);
}

function traineeCard(h) {
  return el('div', { class: 'hit' },
    el('dl', { class: 'facts' }, fact(t('name'), h.name_masked), fact(t('idNumber'), el('span', { class: 'mono' }, h.id_masked)),
      fact(t('village'), h.village_name)),
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'unmask', onclick: () => unmaskDialog(h) }, t('unmask')),
      el('button', {
        type: 'button', class: 'erase no', disabled: !(me && me.role === 'district_admin'),
        title: me && me.role === 'district_admin' ? null : t('viewerOnly'), onclick: (e) => eraseDialog(h, e.target.closest('.hit')),
      }, t('erase'))),
    table([t('class'), t('firstDay'), t('subsidyRule')], h.classes.map((c) => el('tr', {},
      el('td', {}, el('a', { href: '#/class/' + encodeURIComponent(c.class_id) }, c.title)),
      el('td', {}, c.first_day), el('td', {}, code('decision', c.decision))))));
}

function unmaskDialog(h) {
  const reason = el('input', { id: 'unmask-reason', required: true, minlength: 4, maxlength: 200, size: 40 });
  const msg = el('p', { class: 'error', role: 'alert' });
  const shown = el('div', { id: 'unmasked' });
  const form = el('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      msg.textContent = '';
      try {
        const u = await api('/api/v1/trainees/' + encodeURIComponent(h.trainee_id) + '/unmask', { method: 'POST', json: { reason: reason.value } });
        shown.replaceChildren(el('dl', { class: 'facts' }, fact(t('name'), u.name),
          fact(t('idNumber'), el('span', { class: 'mono' }, u.id_number)), fact(t('phone'), u.phone || '—')));
        form.querySelector('button[type=submit]').disabled = true;
      } catch (err) {
        msg.textContent = explain(err);
      }
    },
  },
  el('h2', {}, t('unmaskTitle')), el('p', { class: 'muted' }, t('unmaskHint')),
  el('label', { for: 'unmask-reason' }, t('reason')), reason, msg, shown,
  el('div', { class: 'buttons' }, el('button', { type: 'button', onclick: closeDialog }, t('close')),
    el('button', { type: 'submit', class: 'primary' }, t('confirm'))));
  openDialog(form);
  reason.focus();
}

function eraseDialog(h, card) {
  const reason = el('input', { id: 'erase-reason', required: true, maxlength: 200, size: 40 });
  const msg = el('p', { class: 'error', role: 'alert' });
  const form = el('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      msg.textContent = '';
      try {
        await api('/api/v1/trainees/' + encodeURIComponent(h.trainee_id) + '/erase', { method: 'POST', json: { reason: reason.value } });
        closeDialog();
        card.replaceChildren(el('p', { class: 'erased' }, t('erased')));
      } catch (err) {
        msg.textContent = explain(err);
      }
    },
  },
  el('h2', {}, t('eraseTitle')), el('p', { class: 'muted' }, t('eraseHint')),
  el('label', { for: 'erase-reason' }, t('reason')), reason, msg,
  el('div', { class: 'buttons' }, el('button', { type: 'button', onclick: closeDialog }, t('cancel')),
    el('button', { type: 'submit', class: 'no' }, t('erase'))));
  openDialog(form);
  reason.focus();
}

// ---------------------------------------------------------------------------------------------
// Targets

async function pageTargets() {
  const list = await api('/api/v1/targets');
  const file = el('input', { type: 'file', accept: '.csv,text/csv', id: 'targets-file' });
  const msg = el('div', { role: 'alert' });
  const admin = me && me.role === 'district_admin';
  const form = el('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      msg.replaceChildren();
      if (!file.files.length) return;
      try {
        const text = await file.files[0].text();
        const r = await api('/api/v1/targets', { method: 'POST', body: text, headers: { 'content-type': 'text/csv' } });
        toast(t('imported', { n: r.imported }));
        route();
      } catch (err) {
        msg.replaceChildren(el('p', { class: 'error' }, explain(err)),
          err.problems ? table([t('row'), t('problem')], err.problems.map((p) => el('tr', {}, el('td', { class: 'n' }, p.row), el('td', {}, p.problem)))) : null);
      }
    },
  }, el('h2', {}, t('importTargets')), el('p', { class: 'muted' }, t('importHint')),
  file, el('button', { type: 'submit', class: 'primary', disabled: !admin, title: admin ? null : t('viewerOnly') }, t('upload')), msg);
  return el('section', { class: 'page', id: 'page-targets' },
    el('div', { class: 'head' }, el('h1', {}, t('targets'))),
    el('div', { class: 'two' },
      el('div', { class: 'card' }, table([t('region'), t('year'), t('personTimes')],
        list.map((x) => el('tr', {}, el('td', {}, x.region), el('td', {}, x.year), el('td', { class: 'n' }, num(x.person_times)))))),
      el('div', { class: 'card' }, form)));
}

// ---------------------------------------------------------------------------------------------
// Monthly report

async function pageReport() {
  const p = hashParams();
  const month = p.get('month') || todayChina().slice(0, 7);
  const district = me.district.code;
  const q = '?district=' + encodeURIComponent(district) + '&month=' + encodeURIComponent(month);
  const r = await api('/api/v1/reports/monthly' + q);
  const picker = el('input', { type: 'month', value: month, id: 'report-month' });
  const counts = (title, rows) => el('div', { class: 'card' }, el('h2', {}, title),
    table([title, t('personTimes')], rows.map((x) => el('tr', {}, el('td', {}, x.label), el('td', { class: 'n' }, num(x.person_times))))));
  return el('section', { class: 'page', id: 'page-report' },
    el('div', { class: 'head' }, el('h1', {}, t('report'), ' · ', r.district_name, ' ', r.month),
      el('form', {
        class: 'inline', onsubmit: (e) => { e.preventDefault(); location.hash = '#/report?month=' + picker.value; },
      }, el('label', { for: 'report-month' }, t('month')), picker, el('button', { type: 'submit' }, t('show'))),
      el('span', { class: 'downloads' },
        el('a', { class: 'button primary', id: 'download-xlsx', href: '/api/v1/reports/monthly.xlsx' + q, download: '' }, t('downloadXlsx')),
        el('a', { class: 'button', id: 'download-csv', href: '/api/v1/reports/monthly.csv' + q, download: '' }, t('downloadCsv')))),
    el('div', { class: 'tiles' },
      tile(t('personTimesMonth'), num(r.person_times.total), t('povertyHouseholds') + ' ' + num(r.person_times.poverty_households)),
      tile(t('allowanceTotal'), yuan(r.allowance.total_fen) + ' ' + t('yuan'),
        t('allowanceTrainees') + ' ' + num(r.allowance.trainees) + ' · ' + t('payableDays') + ' ' + num(r.allowance.payable_days)),
      tile(t('personTimesYear'), num(r.progress.cumulative),
        r.progress.target ? t('target') + ' ' + num(r.progress.target) + ' · ' + percent(r.progress.fraction) : t('noTarget'),
        r.progress.fraction)),
    el('div', { class: 'four' }, counts(t('byTrainingType'), r.person_times.by_training_type),
      counts(t('byKeyGroup'), r.person_times.by_key_group), counts(t('byOccupation'), r.person_times.by_occupation),
      counts(t('byTownship'), r.person_times.by_township)),
    el('div', { class: 'two' },
      el('div', { class: 'card' }, el('h2', {}, t('subsidyDecisions')),
        table([t('decision'), t('places')], r.subsidy.map((d) => el('tr', {}, el('td', {}, code('decision', d.decision, d.label)), el('td', { class: 'n' }, num(d.places)))))),
      callbackFigures(r.callbacks)),
    el('div', { class: 'card' }, el('h2', {}, t('places')),
      el('div', { class: 'scroll' }, table([t('class'), t('township'), t('name'), t('idNumber'), t('household'), t('counted'), t('subsidyRule'), t('payableDays'), t('allowance')],
        r.places.map((x) => el('tr', {},
          el('td', {}, el('a', { href: '#/class/' + encodeURIComponent(x.class_id) }, x.class_title)), el('td', {}, x.township),
          el('td', {}, x.name_masked), el('td', { class: 'mono' }, x.id_masked), el('td', {}, x.household),
          el('td', {}, x.counted ? t('yes') : t('no')),
          el('td', { class: 'rule' }, code('decision', x.decision), el('br'), el('small', {}, x.rule)),
          el('td', { class: 'n' }, num(x.payable_days)), el('td', { class: 'n' }, yuan(x.allowance_fen))))))),
    auditHeadLine(r.audit_head));
}

// The month's call-backs: how many trainee-days were drawn, what the calls found, and where.
function callbackFigures(c) {
  if (!c) return null;
  const figure = (key, label, value) => el('div', { 'data-figure': key }, el('dt', {}, label), el('dd', {}, value));
  return el('div', { class: 'card', id: 'report-callbacks' }, el('h2', {}, t('callbacks')),
    el('dl', { class: 'facts' },
      figure('trainee_days', t('traineeDays'), num(c.trainee_days)), figure('called', t('called'), num(c.called)),
      figure('rate', t('callRate'), percent(c.rate)), figure('decided', t('decided'), num(c.decided)),
      figure('confirmed', code('outcome', 'confirmed'), num(c.confirmed)), figure('denied', code('outcome', 'denied'), num(c.denied)),
      figure('unreachable', code('outcome', 'unreachable'), num(c.unreachable)),
      figure('confirmation_rate', t('confirmationRate'), percent(c.confirmation_rate))),
    el('h3', {}, t('denialsByVillage')),
    table([t('village'), t('called'), t('denials')], c.by_village.map((v) => el('tr', { 'data-village': v.village, class: v.denied ? 'held' : null },
      el('td', {}, v.village_name), el('td', { class: 'n' }, num(v.called)), el('td', { class: 'n' }, num(v.denied)))), { id: 'report-callback-villages' }));
}

// ---------------------------------------------------------------------------------------------
// Audit log

async function pageAudit() {
  if (!isAdmin()) {
    return el('section', { class: 'page', id: 'page-audit' }, el('div', { class: 'head' }, el('h1', {}, t('audit'))),
      el('p', { class: 'muted' }, t('auditAdminsOnly')));
  }
  const limit = 100;
  const action = hashParams().get('action') || '';
  const list = await api('/api/v1/audit?limit=' + limit + (action ? '&action=' + encodeURIComponent(action) : ''));
  const known = Object.keys(CODES.action);
  if (action && !known.includes(action)) known.push(action);
  const select = el('select', { id: 'audit-action' }, el('option', { value: '' }, t('all')),
    known.map((a) => el('option', { value: a, selected: a === action }, code('action', a) + ' · ' + a)));
  const filter = el('form', {
    class: 'inline', onsubmit: (e) => {
      e.preventDefault();
      location.hash = '#/audit' + (select.value ? '?action=' + encodeURIComponent(select.value) : '');
    },
  }, el('label', { for: 'audit-action' }, t('action')), select, el('button', { type: 'submit' }, t('filter')));
  return el('section', { class: 'page', id: 'page-audit' },
    el('div', { class: 'head' }, el('h1', {}, t('audit'), ' (', t('latest', { n: num(limit) }), ')'), filter),
    el('div', { class: 'card' }, table([t('time'), t('actor'), t('action'), t('subject'), t('detail')],
      list.map((x) => el('tr', { 'data-action': x.action, 'data-seq': x.seq },
        el('td', { class: 'mono' }, timeOf(x.at_ms)), el('td', {}, x.actor),
        el('td', { title: x.action }, code('action', x.action)), el('td', { class: 'mono' }, x.subject),
        el('td', { class: 'detail' }, auditDetail(x.detail)))), { id: 'audit-log' })));
}

// An entry's details, the known ones in words (a disclosure names its purpose and the call).
function auditDetail(d) {
  if (!d || typeof d !== 'object') return d === null || d === undefined ? '' : String(d);
  const parts = Object.entries(d).map(([k, v]) => {
    if (k === 'purpose') return el('span', { class: 'purpose' }, t('purpose'), '：', code('purpose', v));
    if (k === 'callback') return el('span', { class: 'call' }, t('callId'), ' ', el('span', { class: 'mono' }, v));
    if (k === 'outcome') return el('span', {}, t('outcome'), '：', code('outcome', v));
    if (k === 'decision') return el('span', {}, t('decision'), '：', code('decision', v));
    if (k === 'reason') return el('span', {}, t('reason'), '：', String(v));
    if (Array.isArray(v)) return el('span', { title: v.join('\n') }, k, ': ', t('items', { n: num(v.length) }));
    return el('span', {}, k, ': ', typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));
  });
  return parts.map((p, i) => [i ? ' · ' : null, p]);
}

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  document.getElementById('lang').addEventListener('click', () => {
    lang = lang === 'en' ? 'zh' : 'en';
    localStorage.setItem('songpei.lang', lang);
    if (me) route(); else showLogin();
  });
  document.getElementById('logout').addEventListener('click', async () => {
    try { await api('/api/v1/logout', { method: 'POST' }); } catch (_) { /* signed out either way */ }
    me = null;
    showLogin();
  });
  document.getElementById('dialog').addEventListener('close', () => document.getElementById('dialog').replaceChildren());
  window.addEventListener('hashchange', route);
  try {
    me = await api('/api/v1/me');
    route();
  } catch (err) {
    if (!(err instanceof ApiFailure && err.status === 401)) showLogin(explain(err));
  }
}

document.addEventListener('DOMContentLoaded', start);
