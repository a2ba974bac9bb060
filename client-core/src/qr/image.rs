//! QR codes as pictures: a code as PNG (qrcode), a camera frame or image file decoded (rqrr), and
//! an A4 sheet of printable trainee cards.

use ab_glyph::{Font, FontArc, PxScale, ScaleFont, point};
use image::{GrayImage, ImageFormat, Luma};
use qrcode::{EcLevel, QrCode};

use super::QrError;

/// Cards on one A4 sheet: 3 across, 4 down.
pub const CARDS_PER_SHEET: usize = 12;
const COLS: u32 = 3;
const ROWS: u32 = 4;
/// A4 at 150 dpi.
const SHEET_W: u32 = 1240;
const SHEET_H: u32 = 1754;
const MARGIN: u32 = 40;

/// Fonts with Chinese characters, where Debian, Android and macOS keep them.
pub const SYSTEM_FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/system/fonts/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",
];

/// Where sheet `index` (from 0) of a card print goes: `out` itself, then `NAME-2.png`, …
pub fn sheet_path(out: &std::path::Path, index: usize) -> std::path::PathBuf {
    if index == 0 {
        return out.to_path_buf();
    }
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cards".into());
    out.with_file_name(format!("{stem}-{}.png", index + 1))
}

/// The text printed under a card's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardCaption {
    /// The trainee's masked name, e.g. 「张*明」.
    pub name_masked: String,
    /// A second line: the class, or the trainee's masked ID number.
    pub detail: String,
}

fn code_image(text: &str, module_px: u32) -> Result<GrayImage, QrError> {
    // Level M: a crumpled or smudged printout still reads, and the codes stay small enough for a
    // cheap phone's camera at arm's length.
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| QrError::BadImage(e.to_string()))?;
    Ok(code
        .render::<Luma<u8>>()
        .module_dimensions(module_px, module_px)
        .quiet_zone(true)
        .build())
}

fn png(img: &GrayImage) -> Result<Vec<u8>, QrError> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .map_err(|e| QrError::BadImage(e.to_string()))?;
    Ok(out.into_inner())
}

/// A QR code of `text` as PNG bytes, `module_px` pixels a module.
pub fn render_png(text: &str, module_px: u32) -> Result<Vec<u8>, QrError> {
    png(&code_image(text, module_px.clamp(1, 64))?)
}

/// Every QR code found in an image file (PNG or JPEG), as text.
pub fn decode_image(bytes: &[u8]) -> Result<Vec<String>, QrError> {
    let img = image::load_from_memory(bytes)
        .map_err(|e| QrError::BadImage(e.to_string()))?
        .to_luma8();
    decode_gray(img)
}

/// Every QR code in a greyscale camera frame (for example the Y plane of an NV21 preview frame),
/// `width` × `height` bytes, row by row.
pub fn decode_luma(width: u32, height: u32, pixels: &[u8]) -> Result<Vec<String>, QrError> {
    let img = GrayImage::from_raw(width, height, pixels.to_vec())
        .ok_or_else(|| QrError::BadImage("the frame is smaller than its size says".into()))?;
    decode_gray(img)
}

/// Windows scanned on their own in a large picture: rqrr pairs finder patterns across neighbouring
/// codes when many stand in rows (a sheet of cards) and then reads only a few of them.
const WINDOW: u32 = 600;
const STRIDE: u32 = 150;

fn decode_gray(img: GrayImage) -> Result<Vec<String>, QrError> {
    let mut found = decode_once(img.clone());
    let (w, h) = img.dimensions();
    if w > WINDOW + STRIDE || h > WINDOW + STRIDE {
        let starts = |len: u32| -> Vec<u32> {
            let last = len.saturating_sub(WINDOW);
            let mut v: Vec<u32> = (0..=last).step_by(STRIDE as usize).collect();
            if v.last() != Some(&last) {
                v.push(last);
            }
            v
        };
        for y in starts(h) {
            for x in starts(w) {
                let tile =
                    image::imageops::crop_imm(&img, x, y, WINDOW.min(w), WINDOW.min(h)).to_image();
                for t in decode_once(tile) {
                    if !found.contains(&t) {
                        found.push(t);
                    }
                }
            }
        }
    }
    if found.is_empty() {
        return Err(QrError::NotFound);
    }
    Ok(found)
}

fn decode_once(img: GrayImage) -> Vec<String> {
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let mut out: Vec<String> = Vec::new();
    for text in prepared
        .detect_grids()
        .into_iter()
        .filter_map(|g| g.decode().ok().map(|(_, text)| text))
    {
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

/// Lays out trainee cards on A4 sheets (150 dpi PNG), [`CARDS_PER_SHEET`] a sheet, with a cutting
/// line around each card and its caption under the code. `font` (TrueType or OpenType, a
/// collection's first face) draws the captions; without one they are left out.
pub fn render_card_sheet(
    cards: &[(String, CardCaption)],
    font: Option<&[u8]>,
) -> Result<Vec<Vec<u8>>, QrError> {
    let font = match font {
        Some(bytes) => Some(
            FontArc::try_from_vec(bytes.to_vec())
                .map_err(|_| QrError::BadImage("the font could not be read".into()))?,
        ),
        None => None,
    };
    let cell_w = (SHEET_W - 2 * MARGIN) / COLS;
    let cell_h = (SHEET_H - 2 * MARGIN) / ROWS;
    let mut pages = Vec::new();
    for page in cards.chunks(CARDS_PER_SHEET) {
        let mut sheet = GrayImage::from_pixel(SHEET_W, SHEET_H, Luma([255]));
        for (i, (text, caption)) in page.iter().enumerate() {
            let i = i as u32;
            let x0 = MARGIN + (i % COLS) * cell_w;
            let y0 = MARGIN + (i / COLS) * cell_h;
            dashed_box(&mut sheet, x0, y0, cell_w, cell_h);
            let code = code_image(text, 6)?;
            let cx = x0 + cell_w.saturating_sub(code.width()) / 2;
            let cy = y0 + 12;
            image::imageops::replace(&mut sheet, &code, i64::from(cx), i64::from(cy));
            if let Some(f) = &font {
                let ty = cy + code.height() + 4;
                draw_text(&mut sheet, f, &caption.name_masked, 34.0, x0, cell_w, ty);
                draw_text(&mut sheet, f, &caption.detail, 20.0, x0, cell_w, ty + 42);
            }
        }
        pages.push(png(&sheet)?);
    }
    Ok(pages)
}

fn dashed_box(img: &mut GrayImage, x0: u32, y0: u32, w: u32, h: u32) {
    let grey = Luma([170]);
    for x in x0..(x0 + w).min(img.width()) {
        if (x / 6) % 2 == 0 {
            img.put_pixel(x, y0, grey);
            img.put_pixel(x, (y0 + h - 1).min(img.height() - 1), grey);
        }
    }
    for y in y0..(y0 + h).min(img.height()) {
        if (y / 6) % 2 == 0 {
            img.put_pixel(x0, y, grey);
            img.put_pixel((x0 + w - 1).min(img.width() - 1), y, grey);
        }
    }
}

/// Draws one line of text centred in `[x0, x0 + width)`, its top at `y`.
fn draw_text(
    img: &mut GrayImage,
    font: &FontArc,
    text: &str,
    px: f32,
    x0: u32,
    width: u32,
    y: u32,
) {
    let scaled = font.as_scaled(PxScale::from(px));
    let advance: f32 = text
        .chars()
        .map(|c| scaled.h_advance(scaled.glyph_id(c)))
        .sum();
    let mut x = x0 as f32 + ((width as f32 - advance) / 2.0).max(0.0);
    let baseline = y as f32 + scaled.ascent();
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        let glyph = id.with_scale_and_position(px, point(x, baseline));
        x += scaled.h_advance(id);
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, cov| {
                let px_x = b.min.x as i64 + i64::from(gx);
                let px_y = b.min.y as i64 + i64::from(gy);
                if px_x < 0
                    || px_y < 0
                    || px_x >= i64::from(img.width())
                    || px_y >= i64::from(img.height())
                {
                    return;
                }
                let p = img.get_pixel_mut(px_x as u32, px_y as u32);
                let ink = (cov.clamp(0.0, 1.0) * 255.0) as u8;
                p.0[0] = p.0[0].min(255 - ink);
            });
        }
    }
}
