// A day in a village through the Kotlin bindings on the JVM: an encrypted store, a class, trainees,
// QR sign-in between two phones, sync against a real songpei-server started here, and errors as
// exceptions. Prints "N passed, N failed"; exits 1 when any check failed.
//
// Run by scripts/test-kotlin with the bindings scripts/bindings generated from the library under test.

import java.io.File
import java.nio.file.Files
import java.security.SecureRandom
import java.time.ZoneOffset
import java.time.ZonedDateTime
import kotlinx.coroutines.runBlocking
import org.songpei.core.*

const val VILLAGE = "450802101201"
const val NAME = "张秀英"
const val ID_NUMBER = "450802198503120028"

var passed = 0
var failed = 0

fun check(what: String, body: () -> Unit) {
    try {
        body()
        passed++
        println("ok   $what")
    } catch (t: Throwable) {
        failed++
        println("FAIL $what: $t")
    }
}

fun expect(cond: Boolean, what: String) {
    if (!cond) throw AssertionError(what)
}

inline fun <reified E : Throwable> throws(body: () -> Unit): E {
    try {
        body()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing thrown")
}

fun key(): ByteArray = ByteArray(32).also { SecureRandom().nextBytes(it) }

class Server(root: File) {
    private val dir = Files.createTempDirectory("songpei-kotlin").toFile()
    private val data = File(dir, "server")
    private val bin = File(root, "target/debug/songpei-server").path
    private val proc: Process
    val url: String

    init {
        admin("init", "--district", "450802", "--name", "港北区")
        admin("village", "add", "--code", VILLAGE, "--name", "大湾村")
        proc = ProcessBuilder(bin, "serve", "--listen", "127.0.0.1:0", "--data", data.path)
            .redirectError(ProcessBuilder.Redirect.INHERIT)
            .start()
        val line = proc.inputStream.bufferedReader().readLine()
        url = line.removePrefix("listening on ")
    }

    fun admin(vararg args: String): String {
        val p = ProcessBuilder(listOf(bin, "admin", "--data", data.path) + args).start()
        val out = p.inputStream.bufferedReader().readText()
        check(p.waitFor() == 0) { "admin ${args.toList()} failed: ${p.errorStream.bufferedReader().readText()}" }
        return out
    }

    fun enrollmentCode(username: String, role: String = "coordinator"): String {
        admin("account", "add", "--username", username, "--role", role, "--village", VILLAGE)
        return admin("enroll-code", "--username", username).lines()
            .first { it.startsWith("enrollment code for") }
            .substringAfter(": ").trim()
    }

    fun stop() {
        proc.destroy()
        proc.waitFor()
        dir.deleteRecursively()
    }
}

class Collect : Logger {
    val lines = mutableListOf<String>()
    override fun log(level: LogLevel, target: String, message: String) {
        synchronized(lines) { lines.add(message) }
    }
}

fun classInput(day: String, startHour: Int) = ClassInput(
    title = "大湾村电工培训班", village = VILLAGE, occupation = "电工", level = "初级工",
    trainingType = "就业技能培训", subsidised = true, firstDay = day, lastDay = day,
    dailyHours = 8.0, startsAt = "%02d:00".format(startHour), signOutRequired = false,
    venue = "村委会", venueGps = GpsFix(23.1, 109.6, null), institution = null,
    instructors = listOf("陈师傅"), plannedSize = 20u,
)

fun traineeInput(name: String, idNumber: String, poverty: String?) = TraineeInput(
    name = name, idNumber = idNumber, phone = "13812345678", village = VILLAGE,
    householdId = null, newHouseholdPoverty = poverty, keyGroups = listOf("妇女"),
    trainingWish = null, consentAtMs = 0,
)

fun main(args: Array<String>) {
    val root = File(args.getOrElse(0) { "." }).absoluteFile
    val tmp = Files.createTempDirectory("songpei-phones").toFile()
    val logs = Collect()
    setLogger(logs, LogLevel.DEBUG)
    val server = Server(root)
    val china = ZonedDateTime.now(ZoneOffset.ofHours(8))
    val day = china.toLocalDate().toString()

    val coord = SongpeiPhone.open(File(tmp, "coordinator.db").path, key())
    lateinit var cls: String
    lateinit var t1: String
    lateinit var t2: String

    check("enroll with a one-time code") {
        expect(!coord.isSetUp(), "bare before enrollment")
        val e = runBlocking { coord.enroll(server.url, server.enrollmentCode("wang")) }
        expect(e.district == "450802" && e.villages == listOf(VILLAGE), "district and villages: $e")
        expect(coord.isSetUp(), "set up after enrollment")
    }
    val instructor = SongpeiPhone.open(File(tmp, "instructor.db").path, key())
    check("the class's instructor enrolls a phone of their own") {
        runBlocking { instructor.enroll(server.url, server.enrollmentCode("chen", "instructor")) }
        runBlocking { coord.sync(null) }
        expect(coord.instructors().map { it.username } == listOf("chen"), "instructors: ${coord.instructors()}")
    }
    check("plan a class, register and enrol trainees") {
        cls = coord.createClass(
            classInput(day, maxOf(china.hour - 1, 0)).copy(instructorAccounts = listOf("chen"))
        )
        t1 = coord.addTrainee(traineeInput(NAME, ID_NUMBER, "脱贫户"))
        t2 = coord.addTrainee(traineeInput("李建国", "450802197911230037", null))
        val s = coord.enrol(cls, t1)
        expect(s.subsidised && s.decision == "subsidised" && s.nth == 1u, "subsidy: $s")
        coord.enrol(cls, t2)
        expect(coord.classes().single().enrolled == 2u, "two enrolled")
    }
    check("sync with the built-in transport") {
        val s = runBlocking { coord.sync(null) }
        expect(s.docsPushed >= 4u, "pushed: $s")
    }
    val trainee = SongpeiPhone.open(File(tmp, "trainee.db").path, key())
    check("the trainee's phone key is registered in person") {
        runBlocking { instructor.sync(null) }
        val claim = trainee.keyClaim(t1)
        expect(scan(claim.text) is ScannedCode.KeyClaim, "a key claim")
        val witnessed = instructor.witness(claim.text, cls, day)
        val filed = coord.registerKey(witnessed.text)
        expect(filed.registered && filed.traineeId == t1, "registered: $filed")
    }
    check("QR sign-in between two phones") {
        val code = coord.classCode(cls, day, SignKind.IN)
        expect(decodeImage(code.png) == listOf(code.text), "the PNG decodes to the code")
        val scanned = scan(code.text)
        expect(scanned is ScannedCode.ClassCode && scanned.classId == cls, "scan: $scanned")
        val answer = trainee.respond(code.text, t1, GpsFix(23.1002, 109.6, 20.0))
        val r = coord.accept(answer.text, GpsFix(23.1001, 109.6001, 10.0), null, null, SignKind.IN)
        expect(r.recorded && r.traineeId == t1 && r.timeVerified, "recorded: $r")
        expect(r.keyRegistered == true, "the key is registered: $r")
        expect(!coord.accept(answer.text, null, null, null, SignKind.IN).recorded, "not twice")
    }
    check("the class page counts the day and the allowance") {
        coord.recordByHand(cls, t2, day, SignKind.IN, "手机没电", null)
        val view = coord.classViewJson(cls)
        expect(view.contains("\"payable_days\":1"), "payable days in $view")
        expect(view.contains("\"allowance_fen\":5000"), "allowance in $view")
        expect(!view.contains(NAME), "names are masked")
    }
    check("sync driven by the app's own HTTP client") {
        val p = coord.prepareSync() ?: throw AssertionError("a fresh token is held")
        val c = java.net.URI(p.url).toURL().openConnection() as java.net.HttpURLConnection
        c.requestMethod = "POST"
        c.doOutput = true
        c.setRequestProperty("Authorization", "Bearer ${p.token}")
        c.setRequestProperty("Content-Type", "application/vnd.songpei.sync.v1+postcard")
        c.outputStream.use { it.write(p.body) }
        expect(c.responseCode == 200, "status ${c.responseCode}")
        val round = coord.applySyncResponse(c.inputStream.readBytes())
        expect(round.docsPushed == 1u, "pushed: $round")
        expect(server.admin("flags", "--class", cls).contains("0 flags"), "nothing flagged")
    }
    check("complete and close") {
        coord.complete(cls, t1, "passed", "training")
        coord.setClassStatus(cls, "closed")
        expect(coord.classes().single().status == "closed", "closed")
        expect(coord.conflicts().isEmpty(), "no conflicts")
    }
    check("errors arrive as exceptions") {
        val p = SongpeiPhone.open(File(tmp, "p.db").path, key())
        throws<SongpeiException.NotSetUp> { p.classes() }
        p.setUpOffline("450802", listOf(VILLAGE))
        val bad = throws<SongpeiException.BadInput> { p.addTrainee(traineeInput(NAME, "450802198503120027", null)) }
        expect(bad.field == "id_number" && !bad.reason.contains("450802198503120027"), "field named, value not repeated")
        throws<SongpeiException.BadInput> { scan("SP:not a code") }
        throws<SongpeiException.NotEnrolled> { runBlocking { p.sync(null) } }
        throws<SongpeiException.WrongKey> { SongpeiPhone.open(File(tmp, "p.db").path, key()) }
        val refused = throws<SongpeiException.Refused> {
            runBlocking { SongpeiPhone.open(File(tmp, "r.db").path, key()).enroll(server.url, "WRONG-CODE-1") }
        }
        expect(refused.status == 401.toUShort(), "401: $refused")
    }
    check("nothing personal in the logs") {
        val text = synchronized(logs.lines) { logs.lines.joinToString("\n") }
        expect(!text.contains(NAME) && !text.contains(ID_NUMBER), "logs hold personal data")
    }

    server.stop()
    tmp.deleteRecursively()
    println("$passed passed, $failed failed")
    if (failed > 0) kotlin.system.exitProcess(1)
}
