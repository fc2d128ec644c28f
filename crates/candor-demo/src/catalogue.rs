//! The catalogue the demo, the walk-through and the load commands sell: real-looking items
//! with a typical price in euro cents.

/// (description, typical price in cents).
pub(crate) const CATALOGUE: &[(&str, u64)] = &[
    ("Fairphone 5, 256 GB, refurbished", 45_000),
    ("Raspberry Pi 5, 8 GB", 8_900),
    ("Brompton C Line Explore, 6-speed", 160_000),
    ("Sony WH-1000XM5 headphones", 29_900),
    ("Nintendo Switch OLED", 31_000),
    ("Kindle Paperwhite 16 GB", 14_900),
    ("Canon EOS R50 body", 69_900),
    ("LEGO 10497 Galaxy Explorer", 9_999),
    ("Le Creuset cast-iron casserole 24 cm", 24_900),
    ("Patagonia Nano Puff jacket, size M", 17_900),
    ("De'Longhi Dedica EC685 espresso machine", 16_900),
    ("IKEA Poäng armchair, birch", 9_900),
    ("Garmin Forerunner 265", 39_900),
    ("Vitamix E310 blender", 34_900),
    ("Osprey Atmos AG 65 backpack", 27_900),
    ("Moka pot, Bialetti, 6 cups", 3_490),
];
