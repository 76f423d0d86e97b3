"""Rendering of analysis results: heatmap pictures and the self-contained HTML report."""
