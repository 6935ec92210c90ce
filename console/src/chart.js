// uPlot on its own (web/chart.js), loaded by the first chart drawn (the
// pool page's size chart), so the overview does not parse it.
export { default as uPlot } from 'uplot';
