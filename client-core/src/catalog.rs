//! Catalog values: the fixed vocabularies of the training system, each with its stable code (used in
//! documents, the CLI and JSON) and its Chinese label (shown to people). Either is accepted on input.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A value that is not in a catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a known {catalog}")]
pub struct UnknownValue {
    /// Which catalog was asked.
    pub catalog: &'static str,
}

macro_rules! catalog {
    ($(#[$doc:meta])* $name:ident, $catalog:literal { $($(#[$vdoc:meta])* $variant:ident = $code:literal / $zh:literal $(| $alias:literal)*,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $code)] $variant,)+
        }

        impl $name {
            /// Every value, in catalog order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stable code stored in documents.
            pub fn code(&self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// The Chinese label shown to people.
            pub fn label_zh(&self) -> &'static str {
                match self { $($name::$variant => $zh,)+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                $(if s.eq_ignore_ascii_case($code) || s == $zh $(|| s == $alias)* { return Ok($name::$variant); })+
                Err(UnknownValue { catalog: $catalog })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

catalog!(
    /// Skill level a class trains for (职业技能等级).
    Level, "level" {
        /// 专项能力
        SpecialAbility = "special_ability" / "专项能力",
        /// 初级工 (level 5)
        Junior = "junior" / "初级工" | "初级",
        /// 中级工 (level 4)
        Intermediate = "intermediate" / "中级工" | "中级",
        /// 高级工 (level 3)
        Senior = "senior" / "高级工" | "高级",
        /// 技师 (level 2)
        Technician = "technician" / "技师",
        /// 高级技师 (level 1)
        SeniorTechnician = "senior_technician" / "高级技师",
    }
);

catalog!(
    /// Kind of training (培训类型).
    TrainingType, "training type" {
        /// 就业技能培训
        EmploymentSkills = "employment_skills" / "就业技能培训",
        /// 岗位技能提升培训
        JobSkillsUpgrade = "job_skills_upgrade" / "岗位技能提升培训",
        /// 创业培训
        Entrepreneurship = "entrepreneurship" / "创业培训",
        /// 项目制培训
        ProjectBased = "project_based" / "项目制培训",
        /// 以工代训
        WorkAsTraining = "work_as_training" / "以工代训",
        /// 企业新型学徒制
        Apprenticeship = "apprenticeship" / "企业新型学徒制",
    }
);

catalog!(
    /// Key groups a trainee may belong to (重点群体); several may apply.
    KeyGroup, "key group" {
        /// 脱贫人口
        PovertyAlleviated = "poverty_alleviated" / "脱贫人口",
        /// 农村转移就业劳动者
        RuralMigrantLabour = "rural_migrant_labour" / "农村转移就业劳动者",
        /// 城乡未继续升学初高中毕业生 ("两后生")
        SchoolLeaver = "school_leaver" / "两后生" | "城乡未继续升学初高中毕业生",
        /// 失业人员
        Unemployed = "unemployed" / "失业人员",
        /// 灵活就业人员
        FlexibleEmployment = "flexible_employment" / "灵活就业人员",
        /// 易地搬迁群众
        Relocated = "relocated" / "易地搬迁群众",
        /// 退役军人
        Veteran = "veteran" / "退役军人",
        /// 残疾人
        Disabled = "disabled" / "残疾人",
        /// 妇女
        Women = "women" / "妇女",
        /// 农民工
        MigrantWorker = "migrant_worker" / "农民工",
    }
);

catalog!(
    /// A household's poverty status (户类型).
    PovertyStatus, "poverty status" {
        /// 脱贫户: lifted out of poverty.
        Lifted = "lifted" / "脱贫户",
        /// 监测户 / 监测对象: under monitoring against falling back.
        Monitored = "monitored" / "监测户" | "监测对象",
        /// 低保户: minimum-subsistence household.
        Dibao = "dibao" / "低保户",
        /// 特困: extreme hardship support.
        ExtremeHardship = "extreme_hardship" / "特困" | "特困户",
        /// 一般户: none of the above.
        Ordinary = "ordinary" / "一般户",
    }
);

catalog!(
    /// Where a class stands (班级状态).
    ClassStatus, "class status" {
        /// 计划中
        Planned = "planned" / "计划中",
        /// 进行中
        Running = "running" / "进行中",
        /// 已结业
        Closed = "closed" / "已结业",
        /// 已取消
        Cancelled = "cancelled" / "已取消",
    }
);

catalog!(
    /// Result of a trainee's assessment at the end of a class (结业考核).
    CompletionResult, "completion result" {
        /// 合格
        Passed = "passed" / "合格",
        /// 不合格
        Failed = "failed" / "不合格",
        /// 未参加考核
        Absent = "absent" / "缺考",
    }
);

catalog!(
    /// Certificate issued at completion.
    Certificate, "certificate" {
        /// 培训合格证书
        TrainingCertificate = "training" / "培训合格证书",
        /// 职业技能等级证书
        SkillLevel = "skill_level" / "职业技能等级证书",
        /// 专项职业能力证书
        SpecialAbility = "special_ability" / "专项职业能力证书",
    }
);

impl ClassStatus {
    /// Rank in the one-way life of a class. When phones disagree, the furthest state wins, so a closed
    /// class can never be reopened by a phone that had not heard of the closing.
    pub fn rank(&self) -> u8 {
        match self {
            ClassStatus::Planned => 0,
            ClassStatus::Running => 1,
            ClassStatus::Closed => 2,
            ClassStatus::Cancelled => 3,
        }
    }

    /// True when no more attendance may be recorded.
    pub fn is_final(&self) -> bool {
        matches!(self, ClassStatus::Closed | ClassStatus::Cancelled)
    }
}

impl PovertyStatus {
    /// True for the households whose trainees receive the living allowance (脱贫户 and 监测户).
    pub fn gets_living_allowance(&self) -> bool {
        matches!(self, PovertyStatus::Lifted | PovertyStatus::Monitored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_labels_parse_back() {
        for l in Level::ALL {
            assert_eq!(l.code().parse::<Level>(), Ok(*l));
            assert_eq!(l.label_zh().parse::<Level>(), Ok(*l));
        }
        for t in TrainingType::ALL {
            assert_eq!(t.label_zh().parse::<TrainingType>(), Ok(*t));
        }
        for g in KeyGroup::ALL {
            assert_eq!(g.code().parse::<KeyGroup>(), Ok(*g));
        }
        for p in PovertyStatus::ALL {
            assert_eq!(p.label_zh().parse::<PovertyStatus>(), Ok(*p));
        }
        assert_eq!(
            "监测对象".parse::<PovertyStatus>(),
            Ok(PovertyStatus::Monitored)
        );
        assert_eq!("JUNIOR".parse::<Level>(), Ok(Level::Junior));
        assert!("wizard".parse::<Level>().is_err());
    }

    #[test]
    fn serde_uses_codes() {
        assert_eq!(
            serde_json::to_string(&TrainingType::WorkAsTraining)
                .ok()
                .as_deref(),
            Some("\"work_as_training\"")
        );
    }

    #[test]
    fn allowance_households() {
        let paid: Vec<_> = PovertyStatus::ALL
            .iter()
            .filter(|p| p.gets_living_allowance())
            .collect();
        assert_eq!(paid, [&PovertyStatus::Lifted, &PovertyStatus::Monitored]);
    }
}
