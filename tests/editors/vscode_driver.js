// Drives a real VS Code (code-server 4.100.3 in Debian's Chromium, through
// playwright-core) with the repository's packaged extension, as a person
// would, and writes what it saw as JSON for tests/editors/test_vscode.py (and
// the picture for editors/vscode/screenshot.sh).
//
//   node vscode_driver.js CONFIG.json
//
// CONFIG: {mode: "test" | "screenshot", install: the code-server install folder
// (tests/editors/install_code_server.sh --where), chromium, vsix, server (the
// conc-lsp program), home (an empty folder for the profile), work (the folder
// to open), file (the file in it to open), expected (test: the file's text
// after the quick fix), shots (a folder for the screenshots), out (the JSON),
// picture (screenshot mode: the PNG to write), line (screenshot mode: the
// 1-based line of the diagnostic to show), second (missing mode: another file
// to open), broken (missing mode: a conc-lsp that exits at once), path_env
// (PATH for code-server and so for the extension), viewport ({width, height}),
// hide_sidebar (screenshot mode), settings (more user settings), noqa and
// syntax (test mode: two more copies of the file, for "Disable CONC101 for
// this line" and for a syntax error typed above the finding), show and
// show_line (test mode: a file shown with hints.show "context", the default,
// then "all", around that 1-based line), resolved (test mode: a file whose
// await in `finally` calls a function that never yields)}.
//
// Modes: "test" (hints, hints.show, squiggles, a quick fix by keyboard, the file saved,
// Analyse concurrency, a setting changed), "missing" (no server: the
// message, its Open Settings button), "screenshot" (docs/vscode.png).
//
// A fresh --user-data-dir and --extensions-dir in `home` every run; the .vsix
// is installed with `code-server --install-extension`.  Every wait is
// bounded; a step that fails records its error and a screenshot, and the JSON
// always says how far it got.

'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const net = require('net');
const path = require('path');

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { chromium } = require(path.join(config.install, 'node_modules', 'playwright-core'));
const codeServer = path.join(config.install, 'node_modules', '.bin', 'code-server');

const START_TIMEOUT = 60000; // ms: code-server, the workbench, the extension host
const HINTS_TIMEOUT = 60000; // ms: the server's first hints and diagnostics
const TIMEOUT = 20000; // ms, for every other wait
const EDITOR = '.editor-group-container.active .editor-instance .monaco-editor'; // the active text editor
const result = { mode: config.mode, errors: [], steps: [], toasts: [] };
const userData = path.join(config.home, 'user-data');
const extensions = path.join(config.home, 'extensions');
let shot = 0;

function log(message) {
    process.stderr.write(`vscode_driver: ${message}\n`);
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what, condition, timeout = TIMEOUT, interval = 100) {
    const deadline = Date.now() + timeout;
    let last;
    while (Date.now() < deadline) {
        try {
            last = await condition();
            if (last) {
                return last;
            }
        } catch (error) {
            last = error;
        }
        await sleep(interval);
    }
    throw new Error(`timed out after ${timeout} ms waiting for ${what}${last instanceof Error ? ` (${last.message})` : ''}`);
}

function freePort() {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.on('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

function environment() {
    const env = { ...process.env };
    for (const name of ['CONFIG', 'DATA', 'CACHE', 'STATE']) {
        env[`XDG_${name}_HOME`] = path.join(config.home, name.toLowerCase());
        fs.mkdirSync(env[`XDG_${name}_HOME`], { recursive: true });
    }
    delete env.VSCODE_IPC_HOOK_CLI; // not a terminal inside another VS Code
    if (config.path_env !== undefined) {
        env.PATH = config.path_env; // what the extension host (and so the extension) sees
    }
    return env;
}

function writeSettings(extra = {}) {
    const settings = {
        ...(config.server ? { 'conc-lsp.path': config.server } : {}),
        'editor.inlayHints.enabled': 'on',
        'editor.codeLens': true,
        'editor.minimap.enabled': false,
        'editor.fontSize': 14,
        'editor.lineHeight': 21,
        'files.autoSave': 'off',
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'workbench.colorTheme': 'Default Dark Modern',
        'workbench.secondarySideBar.defaultVisibility': 'hidden',
        'workbench.layoutControl.enabled': false,
        'window.commandCenter': false,
        'chat.commandCenter.enabled': false,
        'security.workspace.trust.enabled': false,
        'telemetry.telemetryLevel': 'off',
        'update.mode': 'none',
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'extensions.ignoreRecommendations': true,
        'git.enabled': false,
        'python.REPL.enableREPLSmartSend': false,
        // settings.json gets its new text in one insertText: nothing may be
        // added to it while it arrives (under load it arrives in pieces)
        '[jsonc]': {
            'editor.autoClosingBrackets': 'never',
            'editor.autoClosingQuotes': 'never',
            'editor.autoSurround': 'never',
            'editor.autoIndent': 'none',
            'editor.formatOnType': false,
            'editor.formatOnSave': false,
        },
        ...extra,
    };
    const folder = path.join(userData, 'User');
    fs.mkdirSync(folder, { recursive: true });
    fs.writeFileSync(path.join(folder, 'settings.json'), JSON.stringify(settings, null, 2));
}

async function step(name, fn) {
    const started = Date.now();
    try {
        await fn();
        result.steps.push(name);
    } catch (error) {
        result.errors.push(`${name}: ${error && error.message ? error.message : error}`);
        log(`${name} failed: ${error && error.stack ? error.stack : error}`);
        await screenshot(`${name}-failed`).catch(() => undefined);
    } finally {
        result[`${name}_ms`] = Date.now() - started;
    }
}

let page;

async function screenshot(name) {
    if (page === undefined || !config.shots) {
        return undefined;
    }
    shot += 1;
    const file = path.join(config.shots, `${String(shot).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file });
    result.screenshots = [...(result.screenshots ?? []), file];
    return file;
}

/** The text of the editor's visible lines (inlay hints are text in them). */
async function viewLines() {
    return page.evaluate((EDITOR) => {
        const editor = document.querySelector(`${EDITOR} .view-lines`);
        if (!editor) {
            return [];
        }
        const lines = [...editor.querySelectorAll('.view-line')].map((line) => ({
            top: parseFloat(line.style.top) || 0,
            text: line.textContent.replace(/\u00a0/g, ' '),
        }));
        return lines.sort((a, b) => a.top - b.top).map((line) => line.text);
    }, EDITOR);
}

/** The visible lines with their 1-based numbers: [{number, text}]. */
async function numberedLines() {
    return page.evaluate((EDITOR) => {
        const root = document.querySelector(EDITOR);
        if (!root) {
            return [];
        }
        const numbers = new Map();
        for (const number of root.querySelectorAll('.margin-view-overlays .line-numbers')) {
            const top = parseFloat(number.parentElement.style.top || number.style.top) || 0;
            numbers.set(top, parseInt(number.textContent, 10));
        }
        return [...root.querySelectorAll('.view-lines .view-line')]
            .map((line) => ({
                top: parseFloat(line.style.top) || 0,
                text: line.textContent.replace(/\u00a0/g, ' '),
            }))
            .sort((a, b) => a.top - b.top)
            .map((line) => ({ number: numbers.get(line.top) ?? null, text: line.text }));
    }, EDITOR);
}

/** Waits until the visible lines stop changing for `quiet` ms (hints that
 * arrive in more than one answer, resolved labels) and returns them. */
async function settledLines(quiet = 1500) {
    let last = JSON.stringify(await numberedLines());
    let since = Date.now();
    await waitFor('the hints to settle', async () => {
        const now = JSON.stringify(await numberedLines());
        if (now !== last) {
            [last, since] = [now, Date.now()];
        }
        return Date.now() - since >= quiet;
    }, HINTS_TIMEOUT);
    return JSON.parse(last);
}

/** Sets user settings in settings.json as a person would (in the editor,
 * saved with Ctrl+S), then goes back to the editor of `file`. */
async function changeSettings(changes, file) {
    await runCommand('Preferences: Open User Settings (JSON)');
    await waitFor('settings.json in an editor', async () => (await tabs()).some((tab) => tab.startsWith('settings.json')));
    await focusEditor('settings.json');
    const settings = JSON.parse(fs.readFileSync(path.join(userData, 'User', 'settings.json'), 'utf8'));
    Object.assign(settings, changes);
    await replaceAndSave(path.join(userData, 'User', 'settings.json'), JSON.stringify(settings));
    await press('Control+W');
    await focusEditor(file);
}

async function squiggles() {
    return page.evaluate(
        (editor) =>
            document.querySelectorAll(
                ['warning', 'error', 'info'].map((level) => `${editor} .squiggly-${level}`).join(', '),
            ).length,
        EDITOR,
    );
}

async function codeLenses() {
    return page.evaluate(
        (editor) =>
            [...document.querySelectorAll(`${editor} .codelens-decoration`)].map((lens) =>
                lens.textContent.replace(/\u00a0/g, ' '),
            ),
        EDITOR,
    );
}

/** The text of the lines with a squiggle under them (inlay hints included). */
async function squiggledLines() {
    return page.evaluate((editor) => {
        const root = document.querySelector(editor);
        if (!root) {
            return [];
        }
        const tops = new Set(
            [...root.querySelectorAll('.squiggly-warning, .squiggly-error, .squiggly-info')].map(
                (squiggle) => parseFloat(squiggle.parentElement.style.top || squiggle.style.top) || 0,
            ),
        );
        return [...root.querySelectorAll('.view-lines .view-line')]
            .filter((line) => tops.has(parseFloat(line.style.top) || 0))
            .map((line) => line.textContent.replace(/\u00a0/g, ' '));
    }, EDITOR);
}

/** The notifications on screen (toasts), as text. */
async function toasts() {
    return page.evaluate(() =>
        [...document.querySelectorAll('.notifications-toasts .notification-toast')].map((toast) =>
            toast.innerText.replace(/\u00a0/g, ' '),
        ),
    );
}

/** The problems in the status bar ("Warnings: 1", ...). */
async function problemsCount() {
    return page.evaluate(() => {
        const item = document.getElementById('status.problems');
        return item ? item.getAttribute('aria-label') || item.textContent : null;
    });
}

async function tabs() {
    return page.evaluate(() =>
        [...document.querySelectorAll('.tabs-container .tab')].map((tab) => tab.getAttribute('aria-label') ?? tab.textContent),
    );
}

/** Headings of the rendered markdown previews (webviews: frames in frames). */
async function previewHeadings() {
    const found = [];
    for (const frame of page.frames()) {
        try {
            const headings = await frame.evaluate(() =>
                document.querySelector('.markdown-body, body.vscode-body')
                    ? [...document.querySelectorAll('h1, h2, h3')].map((h) => `${h.tagName} ${h.textContent.trim()}`)
                    : [],
            );
            found.push(...headings);
        } catch {
            // a frame that went away
        }
    }
    return found;
}

async function press(keys) {
    await page.keyboard.press(keys);
}

/** The title of the active editor when the keyboard is in it, else null. */
async function focusedEditor() {
    return page.evaluate(() => {
        const active = document.activeElement;
        const group = active && active.closest('.editor-group-container.active');
        if (!group || !active.closest('.monaco-editor')) {
            return null;
        }
        const tab = group.querySelector('.tab.active');
        return tab ? tab.getAttribute('aria-label') ?? tab.textContent : null;
    });
}

/** Waits until the keyboard is in the editor of `name` (an editor that just
 * opened takes the focus a moment after its tab shows); clicks into its text
 * when it does not, as a person would. */
async function focusEditor(name) {
    const inIt = async () => ((await focusedEditor()) ?? '').startsWith(name);
    try {
        await waitFor(`the keyboard in ${name}`, inIt, 3000, 50);
    } catch {
        await page.locator(`${EDITOR} .view-lines`).first().click({ position: { x: 5, y: 5 } });
        await waitFor(`the keyboard in ${name}`, inIt);
    }
}

/** Presses `keys` until the quick input shows (a key pressed while the
 * workbench is busy can go unheard), and returns its text box. */
async function quickInput(keys) {
    const input = page.locator('.quick-input-widget input');
    for (let attempt = 0; ; attempt++) {
        await press(keys);
        try {
            await input.waitFor({ state: 'visible', timeout: 5000 });
            return input;
        } catch (error) {
            if (attempt === 2) {
                throw error;
            }
        }
    }
}

async function openFile(name) {
    const input = await quickInput('Control+P');
    await input.fill(name);
    await waitFor(`"${name}" in quick open`, async () =>
        (await page.locator('.quick-input-list .monaco-list-row').count()) > 0 &&
        (await page.locator('.quick-input-list .monaco-list-row').first().textContent()).includes(name),
    );
    await press('Enter');
    await waitFor(`an editor on ${name}`, async () => (await tabs()).some((tab) => tab.startsWith(name)));
    await focusEditor(name);
}

async function runCommand(title) {
    const input = await quickInput('F1');
    await input.fill(`>${title}`);
    const rows = page.locator('.quick-input-list .monaco-list-row');
    await waitFor(`"${title}" first in the command palette`, async () =>
        (await rows.count()) > 0 && (await rows.first().innerText()).startsWith(title),
    );
    result.palette = (await rows.allInnerTexts()).slice(0, 5);
    await press('Enter');
}

/** Waits for the hints, the squiggles and the code lenses of the open file. */
async function waitForAnalysis(timeout) {
    await waitFor(
        'the inlay hints',
        async () => (await viewLines()).some((line) => line.includes('\u200a<- ')),
        timeout,
    );
    await waitFor('the squiggles', async () => (await squiggles()) > 0, TIMEOUT);
    await waitFor('the code lenses', async () => (await codeLenses()).some((lens) => lens.includes('Analyse')), TIMEOUT);
}

/** The cursor's position in the status bar ("Ln 13, Col 9"). */
async function cursorPosition() {
    return page.evaluate(() => {
        const item = [...document.querySelectorAll('.statusbar-item')].find((candidate) =>
            /^Ln \d+, Col \d+/.test(candidate.textContent.trim()),
        );
        return item ? item.textContent.trim() : null;
    });
}

/** Replaces the focused editor's text with `text` (one line) and saves it with Ctrl+S. */
async function replaceAndSave(file, text) {
    await press('Control+A');
    await page.keyboard.insertText(text); // one line: nothing to auto-indent
    // the editor has all of it (under load the text arrives in pieces)
    await waitFor('the new text in the editor', async () => (await cursorPosition()) === `Ln 1, Col ${text.length + 1}`);
    await save(file, text);
}

/** Ctrl+S until `file` holds `text` and its tab is clean (as a person would
 * press it again when the dot stays on the tab). */
async function save(file, text) {
    const saved = async () =>
        fs.readFileSync(file, 'utf8') === text &&
        (await page.locator('.editor-group-container.active .tab.active.dirty').count()) === 0;
    for (let attempt = 0; ; attempt++) {
        await press('Control+S');
        try {
            await waitFor(`${path.basename(file)} saved as expected`, saved, 5000);
            return;
        } catch (error) {
            if (attempt === 2) {
                throw error;
            }
        }
    }
}

async function goToLine(line) {
    const input = await quickInput('Control+G');
    await input.fill(`:${line}`);
    await press('Enter');
    await input.waitFor({ state: 'hidden', timeout: TIMEOUT });
}

/** Ctrl+. until the code action menu shows: a first answer of "No code
 * actions available" was seen on this busy machine, and a person would press
 * it again. Returns the menu; the attempts go into result[`${name}_attempts`]. */
async function actionMenu(name) {
    const menu = page.locator('.action-widget');
    for (let attempt = 1; ; attempt++) {
        await press('Control+.');
        try {
            await menu.waitFor({ state: 'visible', timeout: 5000 });
            result[`${name}_attempts`] = attempt;
            return menu;
        } catch (error) {
            if (attempt === 4) {
                throw error;
            }
            await press('Escape');
            await sleep(1000);
        }
    }
}

async function testMode() {
    const target = path.join(config.work, config.file);
    const expected = fs.readFileSync(config.expected, 'utf8');
    result.original = fs.readFileSync(target, 'utf8');

    await step('open', async () => {
        await openFile(config.file);
    });
    await step('hints', async () => {
        await waitForAnalysis(HINTS_TIMEOUT);
        await sleep(300); // let the last hints of the file render
        result.lines = await viewLines();
        result.squiggles = await squiggles();
        result.codelenses = await codeLenses();
        result.problems = await problemsCount();
        result.toasts.push(...(await toasts()));
        await screenshot('hints-and-squiggles');
    });
    await step('show', async () => {
        // hints.show: the default ("context") and "all" on the same lines
        await openFile(config.show);
        await goToLine(config.show_line);
        await waitFor('the hints', async () => (await viewLines()).some((line) => line.includes('\u200a<- ')), HINTS_TIMEOUT);
        result.show_context = await settledLines();
        result.show_problems = await problemsCount();
        await screenshot('show-context');
        await changeSettings({ 'conc-lsp.hints.show': 'all' }, config.show);
        await waitFor('the bare checkpoints', async () =>
            (await viewLines()).some((line) => line.includes('\u200a<- checkpoint') && !line.includes('<- checkpoint (')),
        );
        result.show_all = await settledLines();
        await screenshot('show-all');
        // "all" stays for the rest of the session: the steps below look at bare awaits
        await openFile(config.file);
    });
    await step('settings', async () => {
        // A setting changed as a person would: in the user settings.json.
        await runCommand('Preferences: Open User Settings (JSON)');
        await waitFor('settings.json in an editor', async () => (await tabs()).some((tab) => tab.startsWith('settings.json')));
        await focusEditor('settings.json');
        const settings = JSON.parse(fs.readFileSync(path.join(userData, 'User', 'settings.json'), 'utf8'));
        settings['conc-lsp.hints.labelStyle'] = 'compact';
        settings['conc-lsp.lens'] = 'all'; // lenses stay on functions without findings
        await replaceAndSave(path.join(userData, 'User', 'settings.json'), JSON.stringify(settings));
        await press('Control+W'); // back to the code
        await focusEditor(config.file);
        await waitFor('the code again', async () => (await viewLines()).some((line) => line.includes('async def')));
        await waitFor('compact hints', async () => (await viewLines()).some((line) => line.includes('⇄')));
        await sleep(1000); // the diagnostics, pulled again with the new settings
        result.lines_compact = await viewLines();
        result.problems_after_settings = await problemsCount();
        await screenshot('compact-hints');
    });
    await step('problem', async () => {
        await focusEditor(config.file);
        await press('Control+Home');
        await press('F8'); // Go to Next Problem: the cursor lands on it
        const widget = page.locator('.marker-widget');
        await widget.waitFor({ state: 'visible', timeout: TIMEOUT });
        result.problem = (await widget.textContent()).replace(/\u00a0/g, ' ');
        // The status bar follows the cursor a moment later (seen under load):
        // wait for it to leave the top of the file, then read it.
        try {
            await waitFor('the cursor on the problem', async () => (await cursorPosition()) !== 'Ln 1, Col 1');
        } catch (error) {
            // recorded as it is: the test says what it expected
        }
        result.problem_cursor = await cursorPosition();
        await screenshot('problem');
        await press('Escape');
        await widget.waitFor({ state: 'hidden', timeout: TIMEOUT });
    });
    await step('quickfix', async () => {
        await waitFor('the keyboard on the problem', async () => ((await focusedEditor()) ?? '').startsWith(config.file));
        const menu = await actionMenu('quickfix');
        const rows = menu.locator('.monaco-list-row.action');
        await waitFor('the quick fixes', async () => (await rows.count()) > 0);
        result.actions = (await rows.allTextContents()).map((text) => text.replace(/\u00a0/g, ' '));
        await screenshot('quick-fix-menu');
        const wanted = result.actions.findIndex((text) => text.includes('(CONC101)'));
        if (wanted < 0) {
            throw new Error(`no CONC101 fix among ${JSON.stringify(result.actions)}`);
        }
        // Down arrow to the fix, as a person would, then Enter.
        for (let i = 0; i <= result.actions.length; i++) {
            const focused = (await menu.locator('.monaco-list-row.action.focused').allTextContents())[0] ?? '';
            if (focused.includes('(CONC101)')) {
                break;
            }
            await press('ArrowDown');
            await sleep(50);
        }
        result.chosen = ((await menu.locator('.monaco-list-row.action.focused').allTextContents())[0] ?? '').replace(
            /\u00a0/g,
            ' ',
        );
        await press('Enter');
        await menu.waitFor({ state: 'hidden', timeout: TIMEOUT });
        await waitFor('the fix in the editor', async () =>
            (await viewLines()).some((line) => line.includes('move_on_after')),
        );
        await save(target, expected);
        result.saved = fs.readFileSync(target, 'utf8');
        await waitFor('no squiggles after the fix', async () => (await squiggles()) === 0);
        result.squiggles_after_fix = await squiggles();
        result.lines_after_fix = await viewLines();
        await waitFor('the lens with no finding', async () =>
            (await codeLenses()).some((lens) => lens.includes('0 findings')),
        );
        result.codelenses_after_fix = await codeLenses();
        await screenshot('fixed-and-saved');
    });
    await step('analyse', async () => {
        await goToLine(10); // inside async_main
        await runCommand('conc-lsp: Analyse concurrency');
        await waitFor(
            'the report preview',
            async () => (await previewHeadings()).some((heading) => heading.includes('Concurrency analysis')),
        );
        await sleep(500);
        result.report_headings = await previewHeadings();
        result.tabs = await tabs();
        result.groups = await page.locator('.editor-group-container').count();
        result.reports = fs.readdirSync(path.join(config.home, 'cache', 'conc-lsp', 'reports'));
        await screenshot('report');
    });
    await step('report_link', async () => {
        // a line reference in the preview, clicked: the code at that line
        await press('Control+1'); // the code, in the first editor group
        await focusEditor(config.file);
        await goToLine(1); // the cursor away from the line the link names
        await waitFor('the cursor on line 1', async () => (await cursorPosition()) === 'Ln 1, Col 1');
        const link = await waitFor('a link to line 14 in the preview', async () => {
            for (const frame of page.frames()) {
                const found = frame.locator('a', { hasText: /^L14$/ });
                if ((await found.count().catch(() => 0)) > 0) {
                    return found.first();
                }
            }
            return undefined;
        });
        result.report_link_href = await link.getAttribute('href');
        await link.click();
        await waitFor('the code at line 14', async () => /^Ln 14, /.test((await cursorPosition()) ?? ''));
        result.report_link_cursor = await cursorPosition();
        result.report_link_tabs = await tabs();
        result.report_link_editor = await focusedEditor();
        await screenshot('report-link-followed');
    });
    await step('analyse_selection', async () => {
        await press('Control+1'); // back to the code, in the first editor group
        await focusEditor(config.file);
        await goToLine(9);
        for (let i = 0; i < 3; i++) {
            await press('Shift+ArrowDown'); // lines 9 to 11 (the selection ends at the start of 12)
        }
        await runCommand('conc-lsp: Analyse concurrency');
        await waitFor('the report of the selection', async () =>
            (await previewHeadings()).some((heading) => heading.includes(`${config.file}:9-11`)),
        );
        await sleep(500);
        result.selection_headings = await previewHeadings();
        result.selection_tabs = await tabs();
        await screenshot('report-of-selection');
    });
    await step('restart', async () => {
        const started = async () => ((await outputChannel()).match(/conc-lsp server running/g) ?? []).length;
        result.starts_before_restart = await started();
        await runCommand('conc-lsp: Restart server');
        await waitFor('the server started again', async () => (await started()) > result.starts_before_restart);
        result.starts_after_restart = await started();
        await press('Control+1');
        await focusEditor(config.file);
        await press('Control+End'); // an edit: the new server must see the document
        await page.keyboard.insertText('\n\nasync def later(ev):\n    await ev.wait()\n');
        await waitFor('a hint from the new server', async () =>
            (await viewLines()).some((line) => line.includes('await ev.wait()') && line.includes('⇄')),
        );
        result.lines_after_restart = await viewLines();
        await screenshot('after-restart');
    });
    await step('noqa', async () => {
        const file = path.join(config.work, config.noqa);
        await openFile(config.noqa);
        await waitFor('the squiggle', async () => (await squiggles()) > 0, HINTS_TIMEOUT);
        await press('Control+Home');
        await press('F8');
        const widget = page.locator('.marker-widget');
        await widget.waitFor({ state: 'visible', timeout: TIMEOUT });
        await press('Escape');
        await widget.waitFor({ state: 'hidden', timeout: TIMEOUT });
        const menu = await actionMenu('noqa');
        const rows = menu.locator('.monaco-list-row.action');
        await waitFor('the actions', async () => (await rows.count()) > 0);
        result.noqa_actions = (await rows.allTextContents()).map((text) => text.replace(/\u00a0/g, ' '));
        for (let i = 0; i <= result.noqa_actions.length; i++) {
            const focused = (await menu.locator('.monaco-list-row.action.focused').allTextContents())[0] ?? '';
            if (focused.includes('Disable CONC101 for this line')) {
                break;
            }
            await press('ArrowDown');
            await sleep(50);
        }
        await screenshot('disable-for-this-line');
        await press('Enter');
        await menu.waitFor({ state: 'hidden', timeout: TIMEOUT });
        await waitFor('the noqa comment in the editor', async () =>
            (await viewLines()).some((line) => line.includes('# noqa: CONC101')),
        );
        const expected = fs.readFileSync(file, 'utf8').replace(
            '# the tractor hang',
            '# the tractor hang  # noqa: CONC101',
        );
        await save(file, expected);
        result.noqa_saved = fs.readFileSync(file, 'utf8');
        await waitFor('no squiggles after the noqa comment', async () => (await squiggles()) === 0);
        result.noqa_squiggles_after = await squiggles();
    });
    await step('syntax', async () => {
        await openFile(config.syntax);
        await waitFor('the squiggle', async () => (await squiggles()) > 0, HINTS_TIMEOUT);
        result.syntax_before = await squiggledLines();
        await goToLine(11); // `    finally:`: a line that does not parse typed above it
        // Home goes to the first character, then to column 1. The status bar may
        // still show the old position when first read: press Home only once the
        // cursor is seen on line 11, and again until it is at column 1.
        await waitFor('the cursor at the start of line 11', async () => {
            const position = await cursorPosition();
            if (position === 'Ln 11, Col 1') return true;
            if (position && position.startsWith('Ln 11,')) await press('Home');
            return false;
        }, TIMEOUT, 500); // time for the status bar to show where Home went
        await page.keyboard.insertText('    x =\n');
        await waitFor('the broken line in the editor', async () => (await viewLines()).some((line) => line.includes('x =')));
        await sleep(3000); // the server's answer for the broken text, usually
        // ... or later on a busy machine: the warning must be (still) there then.
        await waitFor('the warning kept on the wait', async () => (await squiggledLines()).some(
            (line) => line.includes('await ipc_server.wait_for_no_more_peers()')), HINTS_TIMEOUT);
        result.syntax_lines = await viewLines();
        result.syntax_during = await squiggledLines();
        result.syntax_problems = await problemsCount();
        await screenshot('diagnostics-through-a-syntax-error');
    });
    await step('lens_off', async () => {
        await runCommand('Preferences: Open User Settings (JSON)');
        await waitFor('settings.json in an editor', async () => (await tabs()).some((tab) => tab.startsWith('settings.json')));
        await focusEditor('settings.json');
        const settings = JSON.parse(fs.readFileSync(path.join(userData, 'User', 'settings.json'), 'utf8'));
        settings['conc-lsp.lens'] = 'off';
        await replaceAndSave(path.join(userData, 'User', 'settings.json'), JSON.stringify(settings));
        await press('Control+W');
        await focusEditor(config.syntax);
        await waitFor('no code lens', async () => (await codeLenses()).length === 0);
        result.codelenses_off = await codeLenses();
    });
    await step('resolved_edit', async () => {
        // A resolved label (jedi: `helper` never yields) and an edit elsewhere
        // (a function added above, moving the line down): the label must not
        // turn back into the plain one while the server works again.
        await openFile(config.resolved);
        const labelOf = (lines) => {
            const line = lines.find((text) => text.includes('await helper()'));
            return line === undefined ? null : line.split('await helper()')[1].trim();
        };
        await waitFor('the resolved label', async () => (labelOf(await viewLines()) ?? '').startsWith('∅'), HINTS_TIMEOUT);
        result.resolved_before = labelOf(await viewLines());
        await screenshot('resolved-label');
        await goToLine(3);
        if ((await cursorPosition()) !== 'Ln 3, Col 1') {
            await press('Home');
        }
        await waitFor('the cursor at the start of line 3', async () => (await cursorPosition()) === 'Ln 3, Col 1');
        await page.keyboard.insertText('async def other(ev): await ev.wait()\n');
        const seen = [];
        let last = null;
        let since = Date.now();
        await waitFor('the hint of the new function, then settled labels', async () => {
            const lines = await viewLines();
            const now = labelOf(lines);
            if (now !== null && now !== seen[seen.length - 1]) {
                seen.push(now);
            }
            if (now !== last) {
                [last, since] = [now, Date.now()];
            }
            const answered = lines.some((text) => text.startsWith('async def other') && text.includes('⇄'));
            return answered && Date.now() - since >= 2000;
        }, HINTS_TIMEOUT, 25);
        result.resolved_seen_after_edit = seen;
        result.resolved_lines = await viewLines();
        await screenshot('resolved-label-after-an-edit');
    });
    result.toasts.push(...(await toasts()));
}

/** A profile without the server: one message, whatever is opened next. */
async function missingMode() {
    await step('message', async () => {
        await openFile(config.file);
        await waitFor(
            'the message about the missing server',
            async () => (await toasts()).some((toast) => toast.includes('cannot start the server')),
        );
        await screenshot('missing-server');
        await openFile(config.second);
        await sleep(3000); // a second message would be here by now
        result.toasts = await toasts();
        result.notifications = await page.evaluate(() => {
            const bell = document.querySelector('.statusbar-item[id="status.notifications"]');
            return bell ? bell.getAttribute('aria-label') ?? bell.textContent : null;
        });
    });
    await step('open_settings', async () => {
        const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'cannot start the server' });
        await toast.hover();
        await toast.getByRole('button', { name: 'Open Settings' }).click();
        const search = page.locator('.settings-editor .suggest-input-container textarea, .settings-editor .search-container textarea').first();
        await search.waitFor({ state: 'visible', timeout: TIMEOUT });
        result.settings_search = await waitFor('the settings search', async () => (await search.inputValue()) || false);
        const shown = page.locator('.settings-editor .setting-item-contents .setting-item-title');
        await waitFor('the settings found', async () => (await shown.count()) > 0);
        result.settings_shown = (await shown.allInnerTexts()).slice(0, 5);
        await screenshot('settings');
    });
    await step('broken', async () => {
        // conc-lsp.path set to a program that exits at once: the extension
        // restarts on the change, and gives one message with the reason.
        await runCommand('Notifications: Clear All Notifications');
        await waitFor('no notification', async () => (await toasts()).length === 0);
        await runCommand('Preferences: Open User Settings (JSON)');
        await waitFor('settings.json in an editor', async () => (await tabs()).some((tab) => tab.startsWith('settings.json')));
        await focusEditor('settings.json');
        const settings = JSON.parse(fs.readFileSync(path.join(userData, 'User', 'settings.json'), 'utf8'));
        settings['conc-lsp.path'] = config.broken;
        await replaceAndSave(path.join(userData, 'User', 'settings.json'), JSON.stringify(settings));
        await waitFor(
            'the message about the broken server',
            async () => (await toasts()).some((toast) => toast.includes('did not start')),
        );
        await sleep(3000); // a second message would be here by now
        result.broken_toasts = await toasts();
        await screenshot('broken-server');
    });
}

async function screenshotMode() {
    await step('open', async () => {
        await openFile(config.file);
        await goToLine(config.line); // the finding's lines, with their hints and squiggles
    });
    await step('hints', async () => {
        await waitForAnalysis(HINTS_TIMEOUT);
    });
    await step('picture', async () => {
        if (config.hide_sidebar) {
            await press('Control+B'); // more room for the code and its hints
        }
        await goToLine(config.line);
        await press('Home');
        await press('F8'); // the problem under the cursor, with its message
        const widget = page.locator('.marker-widget');
        await widget.waitFor({ state: 'visible', timeout: TIMEOUT });
        await sleep(500);
        // As much code above the finding as fits, the message still in view.
        const editor = page.locator(`${EDITOR} .overflow-guard`).first();
        const fits = async () => {
            const [box, shown] = [await editor.boundingBox(), await widget.boundingBox()];
            return shown.y + shown.height + 2 * 21 <= box.y + box.height;
        };
        for (let i = 0; i < 60 && (await fits()); i++) {
            await press('Control+ArrowUp'); // scrolls the view, not the cursor
            await sleep(30);
        }
        if (!(await fits())) {
            await press('Control+ArrowDown');
        }
        await sleep(1500); // hints of the lines scrolled into view, the widget's layout
        result.lines = await viewLines();
        await page.screenshot({ path: config.picture });
        result.picture = config.picture;
    });
}

async function main() {
    fs.mkdirSync(config.home, { recursive: true });
    if (config.shots) {
        fs.mkdirSync(config.shots, { recursive: true });
    }
    const env = environment();
    writeSettings(config.settings ?? {});

    const install = childProcess.spawnSync(
        codeServer,
        ['--user-data-dir', userData, '--extensions-dir', extensions, '--install-extension', config.vsix],
        { env, encoding: 'utf8', timeout: START_TIMEOUT },
    );
    result.install = `${install.stdout}${install.stderr}`.trim();
    if (install.status !== 0) {
        throw new Error(`code-server --install-extension exited ${install.status}: ${result.install}`);
    }
    result.extensions = fs.readdirSync(extensions).filter((name) => !name.startsWith('.') && name !== 'extensions.json');

    const port = await freePort();
    const logFile = path.join(config.home, 'code-server.log');
    const logStream = fs.openSync(logFile, 'w');
    const server = childProcess.spawn(
        codeServer,
        [
            '--auth', 'none',
            '--bind-addr', `127.0.0.1:${port}`,
            '--disable-telemetry',
            '--disable-update-check',
            '--disable-workspace-trust',
            '--disable-getting-started-override',
            '--ignore-last-opened',
            '--user-data-dir', userData,
            '--extensions-dir', extensions,
        ],
        { env, stdio: ['ignore', logStream, logStream], detached: true },
    );
    let browser;
    try {
        await waitFor(
            'code-server to listen',
            () => fs.readFileSync(logFile, 'utf8').includes('HTTP server listening'),
            START_TIMEOUT,
        );
        browser = await chromium.launch({
            executablePath: config.chromium,
            headless: true,
            args: [
                '--no-sandbox',
                '--disable-gpu',
                '--disable-dev-shm-usage',
                '--disable-quic',
                '--no-first-run',
                '--disable-background-networking',
                '--disable-component-update',
                '--disable-sync',
            ],
        });
        const context = await browser.newContext({ viewport: config.viewport ?? { width: 1280, height: 800 } });
        page = await context.newPage();
        page.on('pageerror', (error) => log(`page error: ${error.message}`));
        await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(config.work)}`);
        await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: START_TIMEOUT });
        await page.locator('.explorer-folders-view, .explorer-viewlet').first().waitFor({ timeout: START_TIMEOUT });
        if (config.mode === 'screenshot') {
            await screenshotMode();
        } else if (config.mode === 'missing') {
            await missingMode();
        } else {
            await testMode();
        }
        result.output = await outputChannel(60).catch((error) => `(no output channel: ${error.message})`);
    } finally {
        if (browser !== undefined) {
            await browser.close().catch(() => undefined);
        }
        try {
            process.kill(-server.pid, 'SIGTERM');
        } catch {
            // already gone
        }
        await sleep(300);
        try {
            process.kill(-server.pid, 'SIGKILL');
        } catch {
            // gone
        }
        result.code_server_log = fs.readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n');
    }
}

/** The extension's output channel, from the extension host's log folder. */
async function outputChannel(lines = 100000) {
    const logs = path.join(userData, 'logs');
    const found = [];
    const walk = (folder) => {
        for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
            const full = path.join(folder, entry.name);
            if (entry.isDirectory()) {
                walk(full);
            } else if (/conc-lsp/.test(entry.name)) {
                found.push(full);
            }
        }
    };
    if (fs.existsSync(logs)) {
        walk(logs);
    }
    return found.map((file) => fs.readFileSync(file, 'utf8')).join('\n').split('\n').slice(-lines).join('\n');
}

main()
    .catch((error) => {
        result.errors.push(`driver: ${error && error.message ? error.message : error}`);
        log(error && error.stack ? error.stack : String(error));
    })
    .finally(() => {
        fs.writeFileSync(config.out, JSON.stringify(result, null, 2));
        process.exit(0);
    });
