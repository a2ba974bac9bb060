//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// songpei: training delivered to the village, recorded offline.
#[derive(Debug, Parser)]
#[command(name = "songpei", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Folder of the phone's store.
    #[arg(
        long,
        global = true,
        default_value = "./songpei-phone",
        env = "SONGPEI_PHONE_DATA"
    )]
    pub(crate) data: PathBuf,
    /// Print results (and errors, on stderr) as JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Set up the store for a district and its villages. Without SONGPEI_KEY, creates a key file.
    Init {
        /// Six-digit district code.
        #[arg(long)]
        district: String,
        /// Twelve-digit village codes (repeat or separate with commas).
        #[arg(long = "village", required = true, value_delimiter = ',')]
        villages: Vec<String>,
    },
    /// Plan, list, show and close classes.
    #[command(subcommand)]
    Class(ClassCommand),
    /// Register and look up trainees.
    #[command(subcommand)]
    Trainee(TraineeCommand),
    /// Register households.
    #[command(subcommand)]
    Household(HouseholdCommand),
    /// Enrol a trainee in a class.
    Enrol {
        /// Class id.
        class: String,
        /// Trainee id.
        trainee: String,
    },
    /// Record a sign-in or sign-out by hand.
    Attend(AttendArgs),
    /// Record many sign-ins and sign-outs from JSON lines on stdin, acknowledging each on stdout
    /// once it is durable: {"class": ID, "trainee": ID, "day": "YYYY-MM-DD", "kind": "in"|"out"}.
    AttendBatch {
        /// Reason recorded with each entry.
        #[arg(long, default_value = "batch entry")]
        reason: String,
    },
    /// Record how a trainee finished a class.
    Complete {
        /// Class id.
        class: String,
        /// Trainee id.
        trainee: String,
        /// passed, failed or absent (or 合格, 不合格, 缺考).
        #[arg(long)]
        result: String,
        /// Certificate issued: training, skill_level or special_ability.
        #[arg(long)]
        certificate: Option<String>,
    },
    /// List the open conflicts (values edited on two phones at once).
    Conflicts,
    /// Print every document as JSON (a backup: personal data in the clear).
    Export,
    /// Compact every document into one snapshot.
    Compact,
    /// Check the store's integrity.
    Check,
    /// Enroll this phone with the district server, with the one-time code the district office
    /// gave (typed, or the text of its QR code). Sets the store up if it is new.
    Enroll {
        /// Server address, e.g. http://127.0.0.1:8080 (may come from the QR code instead).
        #[arg(long, env = "SONGPEI_SERVER")]
        server: Option<String>,
        /// The enrollment code, or the QR code's text.
        #[arg(long)]
        code: String,
        /// Seconds before the request is given up.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// QR sign-in: show a class code, answer one, scan responses and cards, print cards.
    #[command(subcommand)]
    Qr(QrCommand),
    /// Sync with the district server: push what was recorded here, pull what is new in this
    /// phone's villages.
    Sync {
        /// Server address [default: the one the phone enrolled with].
        #[arg(long, env = "SONGPEI_SERVER")]
        server: Option<String>,
        /// Seconds before a round trip is given up (and retried).
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClassCommand {
    /// Plan a new class; prints its id.
    Create(Box<ClassCreateArgs>),
    /// List classes.
    List {
        /// Only this village.
        #[arg(long)]
        village: Option<String>,
        /// Only this status: planned, running, closed, cancelled.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show a class: roster, attendance per day, payable days and allowance.
    Show {
        /// Class id.
        id: String,
    },
    /// Mark a class as running.
    Start {
        /// Class id.
        id: String,
    },
    /// Close a class (结业).
    Close {
        /// Class id.
        id: String,
    },
    /// Cancel a class.
    Cancel {
        /// Class id.
        id: String,
    },
    /// Name the instructor accounts of a class (replacing those named), or with no --account list
    /// the instructors of this phone's villages and those the class names.
    Instructors {
        /// Class id.
        id: String,
        /// An instructor's login name (repeatable).
        #[arg(long = "account")]
        accounts: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum QrCommand {
    /// Print the class code to show now (it changes every 10 seconds); --png writes it as a picture.
    ClassCode {
        /// Class id.
        #[arg(long)]
        class: String,
        /// Training day, YYYY-MM-DD [default: today].
        #[arg(long)]
        day: Option<String>,
        /// in (签到) or out (签退).
        #[arg(long, default_value = "in")]
        kind: String,
        /// Also write the code as a PNG picture here.
        #[arg(long)]
        png: Option<PathBuf>,
    },
    /// On a trainee's phone: answer a class code; prints the response to show the coordinator.
    /// Sets the store up if it is new.
    Respond {
        /// The class code's text (or - to read it from stdin).
        code: String,
        /// The trainee signing in [default: the one given last time].
        #[arg(long)]
        trainee: Option<String>,
        /// Also write the response as a PNG picture here.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Latitude of this phone's fix (signed into the response).
        #[arg(long, requires = "lon", allow_negative_numbers = true)]
        lat: Option<f64>,
        /// Longitude of this phone's fix.
        #[arg(long, requires = "lat", allow_negative_numbers = true)]
        lon: Option<f64>,
        /// Accuracy of the fix in metres.
        #[arg(long)]
        accuracy: Option<f64>,
    },
    /// On a trainee's phone: show this phone's key claim, for an instructor to witness in person.
    /// Sets the store up if it is new.
    Claim {
        /// The trainee [default: the one given last time].
        #[arg(long)]
        trainee: Option<String>,
        /// Also write the claim as a PNG picture here.
        #[arg(long)]
        png: Option<PathBuf>,
    },
    /// On an instructor's phone: witness the key claim of the trainee in front of you (check the
    /// ID card); prints the witnessed claim for the coordinator's phone to scan.
    Witness {
        /// The key claim's text (or - to read it from stdin).
        text: String,
        /// The class.
        #[arg(long)]
        class: String,
        /// The day [default: today].
        #[arg(long)]
        day: Option<String>,
        /// Also write the witnessed claim as a PNG picture here.
        #[arg(long)]
        png: Option<PathBuf>,
    },
    /// On the coordinator's phone: file a witnessed key claim, registering the trainee phone's key
    /// to the trainee.
    Register {
        /// The witnessed claim's text (or - to read it from stdin).
        text: String,
    },
    /// On the coordinator's phone: take a trainee's response or card and record the sign-in.
    /// Any other songpei code is described.
    Scan {
        /// The scanned text (or - to read it from stdin).
        text: String,
        /// For a card: the class [default: that of the last class code shown].
        #[arg(long, requires = "day")]
        class: Option<String>,
        /// For a card: the training day.
        #[arg(long, requires = "class")]
        day: Option<String>,
        /// For a card: in or out.
        #[arg(long, default_value = "in")]
        kind: String,
        /// Latitude of the phone's fix.
        #[arg(long, requires = "lon", allow_negative_numbers = true)]
        lat: Option<f64>,
        /// Longitude of the phone's fix.
        #[arg(long, requires = "lat", allow_negative_numbers = true)]
        lon: Option<f64>,
        /// Accuracy of the fix in metres.
        #[arg(long)]
        accuracy: Option<f64>,
    },
    /// Print the trainee cards of a class on A4 sheets (PNG), signed by the district server.
    Cards {
        /// Class id.
        #[arg(long)]
        class: String,
        /// The PNG to write; a second sheet goes to NAME-2.png, and so on.
        #[arg(long)]
        out: PathBuf,
        /// Server address [default: the one the phone enrolled with].
        #[arg(long, env = "SONGPEI_SERVER")]
        server: Option<String>,
        /// A font with Chinese characters for the names (TrueType/OpenType) [default: the system's].
        #[arg(long, env = "SONGPEI_FONT")]
        font: Option<PathBuf>,
    },
    /// Print the text of every QR code in a picture (PNG or JPEG).
    Decode {
        /// The picture.
        image: PathBuf,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ClassCreateArgs {
    /// Title of the class.
    #[arg(long)]
    pub(crate) title: String,
    /// Village code.
    #[arg(long)]
    pub(crate) village: String,
    /// Occupation (职业/工种).
    #[arg(long)]
    pub(crate) occupation: String,
    /// Level: special_ability, junior, intermediate, senior, technician, senior_technician (or 初级工 …).
    #[arg(long)]
    pub(crate) level: String,
    /// Training type: employment_skills, job_skills_upgrade, entrepreneurship, project_based,
    /// work_as_training, apprenticeship (or 就业技能培训 …).
    #[arg(long = "type")]
    pub(crate) training_type: String,
    /// First training day, YYYY-MM-DD.
    #[arg(long)]
    pub(crate) start: String,
    /// Number of training days.
    #[arg(long)]
    pub(crate) days: u32,
    /// The class is subsidised.
    #[arg(long)]
    pub(crate) subsidised: bool,
    /// A day counts only with a sign-out too.
    #[arg(long)]
    pub(crate) sign_out_required: bool,
    /// Training hours a day.
    #[arg(long)]
    pub(crate) hours: Option<f64>,
    /// Daily start time, HH:MM.
    #[arg(long)]
    pub(crate) starts_at: Option<String>,
    /// Training institution.
    #[arg(long)]
    pub(crate) institution: Option<String>,
    /// Instructor's name (repeatable).
    #[arg(long = "instructor")]
    pub(crate) instructors: Vec<String>,
    /// An instructor's account, by login name (repeatable): who may witness trainee keys and
    /// co-sign card sign-ins in this class. `songpei class instructors` lists them.
    #[arg(long = "instructor-account")]
    pub(crate) instructor_accounts: Vec<String>,
    /// Venue name.
    #[arg(long)]
    pub(crate) venue: Option<String>,
    /// Venue latitude.
    #[arg(long, requires = "lon", allow_negative_numbers = true)]
    pub(crate) lat: Option<f64>,
    /// Venue longitude.
    #[arg(long, requires = "lat", allow_negative_numbers = true)]
    pub(crate) lon: Option<f64>,
    /// Planned number of trainees.
    #[arg(long)]
    pub(crate) planned_size: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TraineeCommand {
    /// Register a trainee; prints the new id.
    Add(TraineeAddArgs),
    /// Show a trainee (masked unless --reveal).
    Show {
        /// Trainee id.
        id: String,
        /// Show the full name, ID number and phone.
        #[arg(long)]
        reveal: bool,
    },
    /// Find a trainee by ID number.
    Find {
        /// 18-digit ID number.
        #[arg(long)]
        id_number: String,
    },
    /// Change a trainee's phone number.
    SetPhone {
        /// Trainee id.
        id: String,
        /// New mobile number.
        phone: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct TraineeAddArgs {
    /// Real name as on the ID card.
    #[arg(long)]
    pub(crate) name: String,
    /// 18-digit resident ID number.
    #[arg(long)]
    pub(crate) id_number: String,
    /// Mobile number.
    #[arg(long)]
    pub(crate) phone: Option<String>,
    /// Village code.
    #[arg(long)]
    pub(crate) village: String,
    /// Existing household id.
    #[arg(long, conflicts_with = "poverty")]
    pub(crate) household: Option<String>,
    /// Poverty status of a new household headed by the trainee: lifted (脱贫户), monitored (监测户),
    /// dibao (低保户), extreme_hardship (特困), ordinary (一般户).
    #[arg(long)]
    pub(crate) poverty: Option<String>,
    /// Key group (repeatable), e.g. poverty_alleviated, women, veteran (or 脱贫人口 …).
    #[arg(long = "group")]
    pub(crate) groups: Vec<String>,
    /// Training wish.
    #[arg(long)]
    pub(crate) wish: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum HouseholdCommand {
    /// Register a household; prints the new id.
    Add {
        /// Village code.
        #[arg(long)]
        village: String,
        /// Poverty status.
        #[arg(long)]
        poverty: String,
        /// Name of the head of the household.
        #[arg(long)]
        head: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct AttendArgs {
    /// Class id.
    pub(crate) class: String,
    /// Trainee id.
    pub(crate) trainee: String,
    /// Training day, YYYY-MM-DD.
    #[arg(long)]
    pub(crate) day: String,
    /// Sign in.
    #[arg(
        long = "in",
        conflicts_with = "sign_out",
        required_unless_present = "sign_out"
    )]
    pub(crate) sign_in: bool,
    /// Sign out.
    #[arg(long = "out")]
    pub(crate) sign_out: bool,
    /// Why it is entered by hand.
    #[arg(long, default_value = "entered by the coordinator")]
    pub(crate) reason: String,
    /// Latitude of the phone's fix.
    #[arg(long, requires = "lon", allow_negative_numbers = true)]
    pub(crate) lat: Option<f64>,
    /// Longitude of the phone's fix.
    #[arg(long, requires = "lat", allow_negative_numbers = true)]
    pub(crate) lon: Option<f64>,
}
