"""damo 3.4.3's terminal colour sets (256-colour ANSI escapes), shared by the heatmap
and ``report access`` (SEMANTICS-ACCESS.md §11)."""

#: (background, foreground) xterm-256 colour per level 0..9
COLORSETS = {
    "gray": ([232] * 10, [237, 239, 241, 243, 245, 247, 249, 251, 253, 255]),
    "flame": ([232, 1, 1, 2, 3, 3, 20, 21, 26, 27],
              [239, 235, 237, 239, 243, 245, 247, 249, 251, 255]),
    "emotion": ([232, 234, 20, 21, 26, 2, 3, 1, 1, 1],
                [239, 235, 237, 239, 243, 245, 247, 249, 251, 255]),
}

RESET = "\x1b[0m"


def color_start(colorset, level):
    """The escape sequence that switches to ``level``'s colours."""
    bg, fg = COLORSETS[colorset]
    return "\x1b[48;5;%dm\x1b[38;5;%dm" % (bg[level], fg[level])


def colored(text, colorset, level):
    """``text`` in ``level``'s colours, followed by a reset."""
    return color_start(colorset, level) + text + RESET


def color_samples(colorset):
    """The digits 0..9, each in its own colour (damo's colour legend)."""
    return "".join("%s%d" % (color_start(colorset, lv), lv) for lv in range(10)) + RESET
