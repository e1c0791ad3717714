// One shell for every page: the path names the page, which renders into <main id="app">.
import { askForKey } from './api.js';
import { errorNotice, fill } from './dom.js';

const ROUTES = [
  [/^\/$/, () => import('./pages/home.js')],
  [/^\/jobs\/([A-Za-z0-9_-]+)$/, () => import('./pages/job.js')],
  [/^\/experiments\/([A-Za-z0-9_-]+)$/, () => import('./pages/experiment.js')],
  [/^\/models\/([A-Za-z0-9_-]+)$/, () => import('./pages/model.js')],
];

const main = document.getElementById('app');
const keyButton = document.getElementById('key-button');
if (sessionStorage.getItem('normlab.apiKey')) keyButton.hidden = false;
keyButton.addEventListener('click', async () => {
  await askForKey('Change the API key used in this tab.');
  location.reload();
});

const route = ROUTES.find(([re]) => re.test(location.pathname));
if (!route) {
  fill(main, errorNotice({ code: 'NOT_FOUND', message: `no page at ${location.pathname}` }));
} else {
  const [re, load] = route;
  const [, id] = re.exec(location.pathname);
  load()
    .then((page) => page.render(main, id))
    .catch((err) => fill(main, errorNotice(err)));
}
