/**
 * The Unicode script of a character, which the trainer needs because SentencePiece never makes a piece
 * that mixes two scripts (`split_by_unicode_script`). Looked up through the platform's regular
 * expression property escapes (`\p{Script=…}`) and cached per code point; only the alphabet of a
 * corpus is ever asked for, so the cost is small.
 *
 * @module
 */

/** Script names in the order they are tried (the common ones first). */
const SCRIPT_NAMES = [
  "Latin",
  "Common",
  "Inherited",
  "Han",
  "Cyrillic",
  "Greek",
  "Arabic",
  "Hebrew",
  "Hiragana",
  "Katakana",
  "Hangul",
  "Devanagari",
  "Thai",
  "Adlam",
  "Ahom",
  "Anatolian_Hieroglyphs",
  "Armenian",
  "Avestan",
  "Balinese",
  "Bamum",
  "Bassa_Vah",
  "Batak",
  "Bengali",
  "Bhaiksuki",
  "Bopomofo",
  "Brahmi",
  "Braille",
  "Buginese",
  "Buhid",
  "Canadian_Aboriginal",
  "Carian",
  "Caucasian_Albanian",
  "Chakma",
  "Cham",
  "Cherokee",
  "Chorasmian",
  "Coptic",
  "Cuneiform",
  "Cypriot",
  "Cypro_Minoan",
  "Deseret",
  "Dives_Akuru",
  "Dogra",
  "Duployan",
  "Egyptian_Hieroglyphs",
  "Elbasan",
  "Elymaic",
  "Ethiopic",
  "Garay",
  "Georgian",
  "Glagolitic",
  "Gothic",
  "Grantha",
  "Gujarati",
  "Gunjala_Gondi",
  "Gurmukhi",
  "Gurung_Khema",
  "Hanifi_Rohingya",
  "Hanunoo",
  "Hatran",
  "Imperial_Aramaic",
  "Inscriptional_Pahlavi",
  "Inscriptional_Parthian",
  "Javanese",
  "Kaithi",
  "Kannada",
  "Kawi",
  "Kayah_Li",
  "Kharoshthi",
  "Khitan_Small_Script",
  "Khmer",
  "Khojki",
  "Khudawadi",
  "Kirat_Rai",
  "Lao",
  "Lepcha",
  "Limbu",
  "Linear_A",
  "Linear_B",
  "Lisu",
  "Lycian",
  "Lydian",
  "Mahajani",
  "Makasar",
  "Malayalam",
  "Mandaic",
  "Manichaean",
  "Marchen",
  "Masaram_Gondi",
  "Medefaidrin",
  "Meetei_Mayek",
  "Mende_Kikakui",
  "Meroitic_Cursive",
  "Meroitic_Hieroglyphs",
  "Miao",
  "Modi",
  "Mongolian",
  "Mro",
  "Multani",
  "Myanmar",
  "Nabataean",
  "Nag_Mundari",
  "Nandinagari",
  "New_Tai_Lue",
  "Newa",
  "Nko",
  "Nushu",
  "Nyiakeng_Puachue_Hmong",
  "Ogham",
  "Ol_Chiki",
  "Ol_Onal",
  "Old_Hungarian",
  "Old_Italic",
  "Old_North_Arabian",
  "Old_Permic",
  "Old_Persian",
  "Old_Sogdian",
  "Old_South_Arabian",
  "Old_Turkic",
  "Old_Uyghur",
  "Oriya",
  "Osage",
  "Osmanya",
  "Pahawh_Hmong",
  "Palmyrene",
  "Pau_Cin_Hau",
  "Phags_Pa",
  "Phoenician",
  "Psalter_Pahlavi",
  "Rejang",
  "Runic",
  "Samaritan",
  "Saurashtra",
  "Sharada",
  "Shavian",
  "Siddham",
  "SignWriting",
  "Sinhala",
  "Sogdian",
  "Sora_Sompeng",
  "Soyombo",
  "Sundanese",
  "Sunuwar",
  "Syloti_Nagri",
  "Syriac",
  "Tagalog",
  "Tagbanwa",
  "Tai_Le",
  "Tai_Tham",
  "Tai_Viet",
  "Takri",
  "Tamil",
  "Tangsa",
  "Tangut",
  "Telugu",
  "Thaana",
  "Tibetan",
  "Tifinagh",
  "Tirhuta",
  "Todhri",
  "Toto",
  "Tulu_Tigalari",
  "Ugaritic",
  "Vai",
  "Vithkuqi",
  "Wancho",
  "Warang_Citi",
  "Yezidi",
  "Yi",
  "Zanabazar_Square",
];

/** Script index of `Common` (also used for unassigned code points). */
export const SCRIPT_COMMON = 1;
/** Script index of `Inherited` (combining marks take the script of what precedes them). */
export const SCRIPT_INHERITED = 2;
/** Script index of `Han`. */
export const SCRIPT_HAN = 3;
/** Script index of `Hiragana`. */
export const SCRIPT_HIRAGANA = 8;
/** Script index of `Katakana`. */
export const SCRIPT_KATAKANA = 9;

let patterns: (RegExp | null)[] | null = null;
const cache = new Map<number, number>();

/** Index of the script of code point `cp` in an internal list; equal indices mean the same script. */
export function scriptOf(cp: number): number {
  const hit = cache.get(cp);
  if (hit !== undefined) return hit;
  patterns ??= SCRIPT_NAMES.map((name) => {
    try {
      return new RegExp(`^\\p{Script=${name}}$`, "u");
    } catch {
      return null; // a script newer than this platform's Unicode data
    }
  });
  const ch = String.fromCodePoint(cp);
  let script = SCRIPT_COMMON;
  for (let i = 0; i < patterns.length; i++) {
    if (patterns[i]?.test(ch)) {
      script = i;
      break;
    }
  }
  cache.set(cp, script);
  return script;
}
