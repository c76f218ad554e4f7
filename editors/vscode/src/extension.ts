// conc-lsp for VS Code: starts the conc-lsp language server for Python files
// and adds the `conc-lsp: Analyse concurrency` and `conc-lsp: Restart server`
// commands.  Everything else (hints, diagnostics, quick fixes, code lenses)
// is the server's, through vscode-languageclient.

import * as childProcess from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';
import {
    CloseAction,
    ConfigurationParams,
    DidChangeConfigurationNotification,
    ErrorAction,
    ExecuteCommandRequest,
    LanguageClient,
    LanguageClientOptions,
    ServerOptions,
    ShowDocumentParams,
    ShowDocumentRequest,
    ShowDocumentResult,
} from 'vscode-languageclient/node';

const SECTION = 'conc-lsp';
const SERVER_ANALYSE = 'conc.analyse';
/** The settings the server reads (conc_lsp/config.py), as VS Code spells them. */
export const SERVER_KEYS = [
    'hints.enabled',
    'hints.kinds',
    'hints.labelStyle',
    'hints.show',
    'hints.maxLength',
    'diagnostics.enabled',
    'select',
    'extend-select',
    'ignore',
    'per-file-ignores',
    'severity',
    'fixes.cleanup-timeout',
    'resolve.enabled',
    'resolve.budget',
    'resolve.memory-limit',
    'python.interpreter',
    'lens',
];
/** The settings that choose the server program: a change restarts it. */
const LAUNCH_KEYS = ['path', 'interpreter'];
const RESTARTS = 3; // crashes of a running server within RESTART_WINDOW_MS that get a restart
const RESTART_WINDOW_MS = 3 * 60 * 1000;
const STDERR_KEPT = 20; // lines of the server's stderr kept for the failure message

interface Launch {
    command: string;
    args: string[];
    /** Where the command came from, for the log and the messages. */
    origin: string;
}

interface AnalyseResult {
    markdown?: string;
    uri?: string;
}

let output: vscode.OutputChannel;
let session: Session | undefined;
let pythonApiListener: vscode.Disposable | undefined;
const shownReports = new Map<string, number>(); // report uri -> when it was shown

/** vscode-languageclient shows its own error popups ("couldn't create connection",
 * "Server initialization failed", ...); this client only logs them: the
 * extension gives one message of its own. */
class ConcClient extends LanguageClient {
    public override error(message: string, data?: unknown): void {
        super.error(message, data, false);
    }
}

/** One start of the server: the client, and what is known about its process. */
class Session {
    public client: ConcClient | undefined;
    public running = false;
    private crashes: number[] = [];
    private reported = false;
    private stderr: string[] = [];
    private exit: string | undefined;

    constructor(public readonly launch: Launch) {}

    public async start(): Promise<boolean> {
        const launch = this.launch;
        output.appendLine(`starting: ${[launch.command, ...launch.args].join(' ')} (${launch.origin})`);
        const serverOptions: ServerOptions = async () => {
            this.stderr = [];
            this.exit = undefined;
            const child = childProcess.spawn(launch.command, launch.args, {
                cwd: workspaceRoot() ?? os.homedir(),
                env: process.env,
            });
            child.on('error', (error) => {
                this.exit = error.message;
            });
            child.on('exit', (code, signal) => {
                this.exit = signal ? `killed by ${signal}` : `exit code ${code}`;
            });
            child.stderr.on('data', (data: Buffer) => {
                this.stderr.push(...data.toString('utf8').split(/\r?\n/).filter((line) => line.trim()));
                this.stderr.splice(0, Math.max(0, this.stderr.length - STDERR_KEPT));
            });
            return child;
        };
        const clientOptions: LanguageClientOptions = {
            documentSelector: [
                { scheme: 'file', language: 'python' },
                { scheme: 'untitled', language: 'python' },
            ],
            outputChannel: output,
            traceOutputChannel: output,
            // No initializationOptions: the editor's settings come through
            // workspace/configuration, answered below with only what the user
            // set, so that pyproject.toml's [tool.conc-lsp] is not overridden by
            // VS Code's defaults.
            initializationFailedHandler: () => false,
            errorHandler: {
                error: (_error, _message, count) =>
                    count !== undefined && count <= 3
                        ? { action: ErrorAction.Continue, handled: true }
                        : { action: ErrorAction.Shutdown, handled: true },
                closed: () => this.closed(),
            },
            middleware: {
                workspace: {
                    configuration: (params, token, next) => answerConfiguration(params, token, next),
                },
                window: {
                    showDocument: (params, next) => showDocument(params, next),
                },
            },
        };
        const client = new ConcClient(SECTION, 'conc-lsp', serverOptions, clientOptions);
        this.client = client;
        try {
            await client.start();
        } catch (error) {
            this.fail(`the server did not start (${await this.why(error)})`);
            return false;
        }
        this.running = true;
        output.appendLine('conc-lsp server running');
        return true;
    }

    public async stop(): Promise<void> {
        const client = this.client;
        this.client = undefined;
        this.running = false;
        this.reported = true; // a stop on purpose is no failure
        if (client !== undefined) {
            try {
                await client.stop(3000);
            } catch (error) {
                output.appendLine(`stopping the server: ${error}`);
            }
        }
    }

    private closed(): { action: CloseAction; handled: boolean } {
        if (!this.running) {
            return { action: CloseAction.DoNotRestart, handled: true }; // start() reports it
        }
        const now = Date.now();
        this.crashes = this.crashes.filter((time) => now - time < RESTART_WINDOW_MS);
        this.crashes.push(now);
        if (this.crashes.length <= RESTARTS) {
            output.appendLine(`conc-lsp server stopped (${this.exit ?? 'connection closed'}); restarting it`);
            return { action: CloseAction.Restart, handled: true };
        }
        this.running = false;
        void this.why(undefined).then((reason) =>
            this.fail(`the server stopped ${this.crashes.length} times in 3 minutes (${reason}); it was not restarted`),
        );
        return { action: CloseAction.DoNotRestart, handled: true };
    }

    private async why(error: unknown): Promise<string> {
        // the process's exit arrives a moment after the closed connection
        for (let i = 0; i < 20 && this.exit === undefined; i++) {
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const last = this.stderr.filter((line) => !/^\s*(Traceback|File |\^)/.test(line)).slice(-1)[0];
        const parts = [this.exit, last].filter((part): part is string => !!part);
        if (parts.length === 0 && error instanceof Error) {
            parts.push(error.message);
        }
        return parts.join(': ') || 'no reason given';
    }

    private fail(problem: string): void {
        if (this.reported) {
            return;
        }
        this.reported = true;
        let hint = 'Check conc-lsp.path, or install conc-lsp (pip install conc-lsp).';
        if (this.launch.origin === 'the Python extension\'s interpreter') {
            hint = `Install it into that interpreter (${this.launch.command} -m pip install conc-lsp) or set conc-lsp.path.`;
        }
        reportProblem(`${problem}. ${hint}`);
    }
}

/** The one message for a server that cannot run, with what to do. */
function reportProblem(problem: string): void {
    problem = problem.endsWith('.') ? problem : `${problem}.`;
    output.appendLine(`conc-lsp: cannot start the server: ${problem}`);
    void vscode.window
        .showErrorMessage(`conc-lsp: cannot start the server: ${problem}`, 'Open Settings', 'Show Log')
        .then((choice) => {
            if (choice === 'Open Settings') {
                void vscode.commands.executeCommand('workbench.action.openSettings', 'conc-lsp.path');
            } else if (choice === 'Show Log') {
                output.show(true);
            }
        });
}

// -- finding the server ---------------------------------------------------------

function workspaceRoot(): string | undefined {
    const folder = vscode.workspace.workspaceFolders?.[0];
    return folder?.uri.scheme === 'file' ? folder.uri.fsPath : undefined;
}

/** `~`, `${workspaceFolder}` and `${userHome}` expanded; relative to the workspace. */
function expand(value: string): string {
    const root = workspaceRoot();
    let result = value.trim().replace(/\$\{userHome\}/g, os.homedir());
    if (root !== undefined) {
        result = result.replace(/\$\{workspaceFolder\}/g, root);
    }
    if (result === '~' || result.startsWith('~/')) {
        result = path.join(os.homedir(), result.slice(1));
    }
    if (!path.isAbsolute(result) && result.includes(path.sep) && root !== undefined) {
        result = path.resolve(root, result);
    }
    return result;
}

function isExecutable(file: string): boolean {
    try {
        if (!fs.statSync(file).isFile()) {
            return false;
        }
        fs.accessSync(file, process.platform === 'win32' ? fs.constants.R_OK : fs.constants.X_OK);
        return true;
    } catch {
        return false;
    }
}

/** A program on PATH, like `which`. */
function which(name: string): string | undefined {
    const extensions = process.platform === 'win32' ? (process.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
    for (const folder of (process.env.PATH ?? '').split(path.delimiter)) {
        for (const extension of extensions) {
            const candidate = path.join(folder, name + extension);
            if (folder && isExecutable(candidate)) {
                return candidate;
            }
        }
    }
    return undefined;
}

/** A program named by a setting: a path, or a name looked up on PATH. */
function program(value: string): string | undefined {
    const expanded = expand(value);
    if (path.isAbsolute(expanded)) {
        return isExecutable(expanded) ? expanded : undefined;
    }
    return which(expanded);
}

interface PythonExtensionApi {
    environments?: {
        getActiveEnvironmentPath(resource?: vscode.Uri): { id: string; path: string };
        resolveEnvironment(
            environment: { id: string; path: string } | string,
        ): Promise<{ executable: { uri?: vscode.Uri } } | undefined>;
        onDidChangeActiveEnvironmentPath: vscode.Event<unknown>;
    };
    settings?: {
        getExecutionDetails?(resource?: vscode.Uri): { execCommand: string[] | undefined };
    };
}

async function pythonApi(): Promise<PythonExtensionApi | undefined> {
    const extension = vscode.extensions.getExtension<PythonExtensionApi>('ms-python.python');
    if (extension === undefined) {
        return undefined;
    }
    try {
        return extension.isActive ? extension.exports : await extension.activate();
    } catch (error) {
        output.appendLine(`the Python extension did not activate: ${error}`);
        return undefined;
    }
}

/** The interpreter selected in the Python extension, when it is installed. */
async function pythonInterpreter(resource?: vscode.Uri): Promise<string | undefined> {
    const api = await pythonApi();
    if (api === undefined) {
        return undefined;
    }
    try {
        if (api.environments !== undefined) {
            const active = api.environments.getActiveEnvironmentPath(resource);
            const resolved = await api.environments.resolveEnvironment(active);
            return resolved?.executable.uri?.fsPath ?? active.path;
        }
        return api.settings?.getExecutionDetails?.(resource).execCommand?.[0];
    } catch (error) {
        output.appendLine(`no interpreter from the Python extension: ${error}`);
        return undefined;
    }
}

/** The server command, or why there is none. */
async function findServer(): Promise<Launch | string> {
    const settings = vscode.workspace.getConfiguration(SECTION);
    const configuredPath = settings.get<string>('path', '').trim();
    if (configuredPath) {
        const found = program(configuredPath);
        return found !== undefined
            ? { command: found, args: ['serve'], origin: 'conc-lsp.path' }
            : `conc-lsp.path is \`${configuredPath}\`, which is not an executable file. Set conc-lsp.path to the conc-lsp program (e.g. .venv/bin/conc-lsp)`;
    }
    const interpreter = settings.get<string>('interpreter', '').trim();
    if (interpreter) {
        const found = program(interpreter);
        return found !== undefined
            ? { command: found, args: ['-m', 'conc_lsp', 'serve'], origin: 'conc-lsp.interpreter' }
            : `conc-lsp.interpreter is \`${interpreter}\`, which is not an executable file. Set it to a Python with conc-lsp installed`;
    }
    const onPath = which('conc-lsp');
    if (onPath !== undefined) {
        return { command: onPath, args: ['serve'], origin: 'PATH' };
    }
    const python = await pythonInterpreter(vscode.window.activeTextEditor?.document.uri);
    if (python) {
        return { command: python, args: ['-m', 'conc_lsp', 'serve'], origin: "the Python extension's interpreter" };
    }
    return '`conc-lsp` not found. Install it (pip install conc-lsp) or set conc-lsp.path';
}

// -- settings ---------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is { [key: string]: Json } {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Later layers win; objects merge key by key, as VS Code merges them. */
function merge(layers: unknown[]): Json | undefined {
    let result: Json | undefined;
    for (const layer of layers) {
        if (layer === undefined) {
            continue;
        }
        result = isObject(result) && isObject(layer) ? { ...result, ...layer } : (layer as Json);
    }
    return result;
}

/** The server's settings section: only what the user set (in any scope), never
 * VS Code's defaults, so that `[tool.conc-lsp]` in pyproject.toml keeps its
 * effect for every key the user left alone.  python.interpreter falls back to
 * the Python extension's interpreter. */
export async function userSettings(scopeUri?: string): Promise<{ [key: string]: Json }> {
    const uri = scopeUri ? vscode.Uri.parse(scopeUri) : undefined;
    const settings = vscode.workspace.getConfiguration(SECTION, { uri, languageId: 'python' });
    const result: { [key: string]: Json } = {};
    for (const key of SERVER_KEYS) {
        const seen = settings.inspect(key);
        const value = merge([
            seen?.globalValue,
            seen?.workspaceValue,
            seen?.workspaceFolderValue,
            seen?.globalLanguageValue,
            seen?.workspaceLanguageValue,
            seen?.workspaceFolderLanguageValue,
        ]);
        if (value === undefined || (key === 'python.interpreter' && value === '')) {
            continue;
        }
        let target = result;
        const parts = key.split('.');
        for (const part of parts.slice(0, -1)) {
            target = (isObject(target[part]) ? target[part] : (target[part] = {})) as { [key: string]: Json };
        }
        target[parts[parts.length - 1]] = key === 'python.interpreter' ? expand(String(value)) : value;
    }
    if (!isObject(result.python) || !result.python.interpreter) {
        const python = await pythonInterpreter(uri);
        if (python) {
            result.python = { interpreter: python };
        }
    }
    return result;
}

async function answerConfiguration(
    params: ConfigurationParams,
    token: vscode.CancellationToken,
    next: (params: ConfigurationParams, token: vscode.CancellationToken) => unknown,
): Promise<unknown[]> {
    const others = params.items.some((item) => item.section !== SECTION);
    const defaults = others ? await Promise.resolve(next(params, token)) : [];
    return Promise.all(
        params.items.map((item, index) =>
            item.section === SECTION ? userSettings(item.scopeUri) : (defaults as unknown[])[index] ?? null,
        ),
    );
}

/** Tell the server its settings changed: it asks for them again (workspace/configuration). */
function settingsChanged(): void {
    const client = session?.running ? session.client : undefined;
    if (client !== undefined) {
        void client.sendNotification(DidChangeConfigurationNotification.type, { settings: null });
    }
}

// -- the report -----------------------------------------------------------------

function isReport(uri: string): boolean {
    return uri.startsWith('file:') && uri.endsWith('.md') && uri.includes('/conc-lsp/reports/');
}

/** The report as a rendered markdown preview beside the code. */
async function showReport(uri: vscode.Uri): Promise<void> {
    shownReports.set(uri.toString(), Date.now());
    try {
        await vscode.commands.executeCommand('markdown.showPreviewToSide', uri);
    } catch (error) {
        output.appendLine(`no markdown preview (${error}): opening the report as text`);
        await vscode.window.showTextDocument(uri, { viewColumn: vscode.ViewColumn.Beside, preview: true });
    }
}

/** The server asks to show its saved report (after conc.analyse from the
 * command or a code lens): a preview instead of the raw markdown. */
async function showDocument(
    params: ShowDocumentParams,
    next: ShowDocumentRequest.HandlerSignature,
): Promise<ShowDocumentResult> {
    if (!isReport(params.uri) || params.external) {
        return next(params, new vscode.CancellationTokenSource().token) as Promise<ShowDocumentResult>;
    }
    await showReport(vscode.Uri.parse(params.uri));
    return { success: true };
}

/** `conc-lsp: Analyse concurrency`: the selected lines, else the function or
 * class around the cursor, else the whole file. */
async function analyse(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (editor === undefined || editor.document.languageId !== 'python') {
        void vscode.window.showInformationMessage('conc-lsp: open a Python file to analyse its concurrency.');
        return;
    }
    const client = await running();
    if (client === undefined) {
        return;
    }
    const uri = client.code2ProtocolConverter.asUri(editor.document.uri);
    const selection = editor.selection;
    const args: unknown[] = [uri];
    if (!selection.isEmpty) {
        let end = selection.end.line;
        if (selection.end.character === 0 && end > selection.start.line) {
            end--; // a selection of whole lines ends at the start of the next one
        }
        args.push({ start: selection.start.line, end });
    } else {
        args.push({ at: selection.active.line }); // the server finds the function or class around it
    }
    output.appendLine(`${SERVER_ANALYSE} ${JSON.stringify(args)}`);
    const started = Date.now();
    let result: AnalyseResult | undefined;
    try {
        result = (await vscode.window.withProgress(
            { location: vscode.ProgressLocation.Window, title: 'conc-lsp: analysing concurrency' },
            () => client.sendRequest(ExecuteCommandRequest.type, { command: SERVER_ANALYSE, arguments: args }),
        )) as AnalyseResult | undefined;
    } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        void vscode.window.showErrorMessage(`conc-lsp: Analyse concurrency failed: ${message}`);
        return;
    }
    if (result?.uri) {
        const shown = shownReports.get(vscode.Uri.parse(result.uri).toString());
        if (shown === undefined || shown < started) {
            await showReport(vscode.Uri.parse(result.uri)); // the server did not ask to show it
        }
    } else if (result?.markdown) {
        const report = await vscode.workspace.openTextDocument({ language: 'markdown', content: result.markdown });
        await vscode.commands.executeCommand('markdown.showPreviewToSide', report.uri);
    }
}

// -- lifecycle ------------------------------------------------------------------

/** The running client, starting the server if needed; undefined (and one
 * message) when it cannot run. */
async function running(): Promise<LanguageClient | undefined> {
    if (session?.running && session.client !== undefined) {
        return session.client;
    }
    await restart();
    return session?.running ? session.client : undefined;
}

let starting: Promise<void> | undefined;

async function restart(): Promise<void> {
    if (starting !== undefined) {
        return starting; // one start at a time
    }
    starting = (async () => {
        const previous = session;
        session = undefined;
        await previous?.stop();
        const launch = await findServer();
        if (typeof launch === 'string') {
            reportProblem(launch);
            return;
        }
        session = new Session(launch);
        await session.start();
    })();
    try {
        await starting;
    } finally {
        starting = undefined;
    }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    output = vscode.window.createOutputChannel('conc-lsp');
    context.subscriptions.push(
        output,
        vscode.commands.registerCommand('conc-lsp.analyse', () => analyse()),
        vscode.commands.registerCommand('conc-lsp.restart', () => restart()),
        vscode.commands.registerCommand('conc-lsp.showLog', () => output.show(true)),
        vscode.workspace.onDidChangeConfiguration((event) => {
            if (LAUNCH_KEYS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`))) {
                void restart();
            } else if (event.affectsConfiguration(SECTION)) {
                settingsChanged();
            }
        }),
        { dispose: () => pythonApiListener?.dispose() },
    );
    void pythonApi().then((api) => {
        pythonApiListener = api?.environments?.onDidChangeActiveEnvironmentPath(() => {
            if (session?.launch.origin === "the Python extension's interpreter") {
                void restart();
            } else {
                settingsChanged(); // python.interpreter follows the selection
            }
        });
    });
    void restart(); // not awaited: activation does not wait for the server
}

export async function deactivate(): Promise<void> {
    await session?.stop();
    session = undefined;
}
