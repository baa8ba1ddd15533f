//! An RGB pixel buffer with the few drawing operations the pictures need, saved as PNG.

use std::path::Path;

use seg_tensor::{Error, Result};

use super::font;

/// A colour `(r, g, b)`.
pub type Rgb = [u8; 3];

/// An 8-bit RGB image, row-major, `(0, 0)` at the top left.
#[derive(Clone, Debug, PartialEq)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Canvas {
    /// A canvas of one colour.
    pub fn new(width: usize, height: usize, background: Rgb) -> Self {
        Canvas {
            width,
            height,
            pixels: background.repeat(width * height),
        }
    }

    /// The colour at `(x, y)`.
    pub fn get(&self, x: usize, y: usize) -> Rgb {
        let i = 3 * (y * self.width + x);
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Sets `(x, y)` to `c`; a point outside the canvas is ignored.
    pub fn set(&mut self, x: isize, y: isize, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = 3 * (y as usize * self.width + x as usize);
            self.pixels[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Fills the `w x h` rectangle at `(x, y)`, clipped to the canvas.
    pub fn fill_rect(&mut self, x: isize, y: isize, w: usize, h: usize, c: Rgb) {
        for dy in 0..h as isize {
            for dx in 0..w as isize {
                self.set(x + dx, y + dy, c);
            }
        }
    }

    /// A line from `a` to `b` (Bresenham), `width` pixels thick.
    pub fn line(&mut self, a: (isize, isize), b: (isize, isize), width: usize, c: Rgb) {
        let (dx, dy) = ((b.0 - a.0).abs(), -(b.1 - a.1).abs());
        let (sx, sy) = (if a.0 < b.0 { 1 } else { -1 }, if a.1 < b.1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (a.0, a.1, dx + dy);
        let half = (width / 2) as isize;
        loop {
            self.fill_rect(x - half, y - half, width, width, c);
            if (x, y) == b {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draws `text` with its top left at `(x, y)`, each font pixel a `scale x scale` square.
    pub fn text(&mut self, x: isize, y: isize, text: &str, scale: usize, c: Rgb) {
        for (k, ch) in text.chars().enumerate() {
            let left = x + (k * (font::WIDTH + 1) * scale) as isize;
            for (row, bits) in font::glyph(ch).iter().enumerate() {
                for col in 0..font::WIDTH {
                    if bits & (1 << (font::WIDTH - 1 - col)) != 0 {
                        let (px, py) = (left + (col * scale) as isize, y + (row * scale) as isize);
                        self.fill_rect(px, py, scale, scale, c);
                    }
                }
            }
        }
    }

    /// Width in pixels of `text` drawn at `scale`.
    pub fn text_width(text: &str, scale: usize) -> usize {
        (text.chars().count() * (font::WIDTH + 1)).saturating_sub(1) * scale
    }

    /// Height in pixels of a line of text at `scale`.
    pub fn text_height(scale: usize) -> usize {
        font::HEIGHT * scale
    }

    /// Copies `other` onto this canvas with its top left at `(x, y)`, clipped.
    pub fn blit(&mut self, other: &Canvas, x: isize, y: isize) {
        for oy in 0..other.height {
            for ox in 0..other.width {
                self.set(x + ox as isize, y + oy as isize, other.get(ox, oy));
            }
        }
    }

    /// The canvas as PNG file bytes (8-bit RGB).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let png_error = |e: png::EncodingError| Error::invalid("Canvas::to_png", e.to_string());
        let mut writer = encoder.write_header().map_err(png_error)?;
        writer.write_image_data(&self.pixels).map_err(png_error)?;
        writer.finish().map_err(png_error)?;
        Ok(out)
    }

    /// Writes the canvas to `path` as a PNG file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_png()?).map_err(|e| Error::Format {
            path: path.display().to_string(),
            msg: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawing_and_png_round_trip() {
        let mut c = Canvas::new(40, 20, [255; 3]);
        c.line((0, 0), (39, 19), 1, [0, 0, 0]);
        assert_eq!(c.get(0, 0), [0, 0, 0]);
        assert_eq!(c.get(39, 19), [0, 0, 0]);
        c.text(1, 10, "A1", 1, [255, 0, 0]);
        assert_eq!(c.get(3, 10), [255, 0, 0]); // the top of the A
        assert_eq!(Canvas::text_width("A1", 2), 22);
        c.set(-1, 100, [1, 2, 3]);
        let png = c.to_png().unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (40, 20));
        assert_eq!(&buf[..info.buffer_size()], &c.pixels[..]);
    }
}
