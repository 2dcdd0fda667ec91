"""What tests ask of a drawn figure."""


def cut_off(fig) -> bool:
    """Whether anything drawn (titles, legends, tick labels) would be cut off at the figure's edge."""
    fig.canvas.draw()
    drawn, page = fig.get_tightbbox(fig.canvas.get_renderer()), fig.bbox_inches
    slack = 0.02  # inches
    return (drawn.x0 < page.x0 - slack or drawn.y0 < page.y0 - slack or drawn.x1 > page.x1 + slack
            or drawn.y1 > page.y1 + slack)
