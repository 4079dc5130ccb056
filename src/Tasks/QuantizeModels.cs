using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace Quantize.Build.Tasks;

/// <summary>
/// Quantizes prepared <c>&lt;QuantizeModel&gt;</c> items by running the quantizer in its own process
/// (<c>dotnet exec dotnet-quantize.dll msbuild-batch REQUEST.json</c>): nothing of the quantizer loads into MSBuild,
/// and a rebuilt package is never held by a locked assembly. The tool quantizes the items concurrently, through the
/// shared cache, and reports one line per item, which this task turns into messages and <c>QNT</c> diagnostics.
/// </summary>
public sealed class QuantizeModels : ToolTask
{
    private readonly Dictionary<string, ITaskItem> _byId = new(StringComparer.Ordinal);
    private readonly HashSet<string> _reported = new(StringComparer.Ordinal);
    private readonly List<string> _errorOutput = [];

    /// <summary>The items, as <see cref="PrepareQuantizeModels"/> left them.</summary>
    [Required]
    public ITaskItem[] Models { get; set; } = [];

    /// <summary>The tool's entry assembly (<c>tools/net10.0/dotnet-quantize.dll</c> in the package).</summary>
    [Required]
    public string ToolAssembly { get; set; } = "";

    /// <summary>Where the request for the tool is written.</summary>
    [Required]
    public string RequestFile { get; set; } = "";

    /// <summary>The cache folder; empty means the user-level default.</summary>
    public string? CacheDirectory { get; set; }

    /// <summary>False turns the cache off.</summary>
    public bool UseCache { get; set; } = true;

    /// <summary>At most this many models at once; 0 means the number of cores.</summary>
    public int MaxParallel { get; set; }

    /// <summary>The dotnet host to run the tool with; empty means <c>DOTNET_HOST_PATH</c>, then <c>dotnet</c> on the PATH.</summary>
    public string? DotnetHost { get; set; }

    /// <summary>The project file, which diagnostics point at.</summary>
    public string? ProjectFile { get; set; }

    /// <summary>The Version of the project's Quantize.Kernels PackageReference (a version or range), if any: QNT010 warns when it is older than the models need.</summary>
    public string? KernelsReference { get; set; }

    /// <inheritdoc />
    protected override string ToolName => OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";

    /// <inheritdoc />
    public override bool Execute()
    {
        if (Models.Length == 0) return true;
        if (!File.Exists(ToolAssembly))
        {
            Log.LogError(null, "QNT009", null, ProjectFile, 0, 0, 0, 0, $"the quantizer is missing ({ToolAssembly}); restore the Quantize.Build package again.");
            return false;
        }
        string full = Path.GetFullPath(RequestFile);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full, Request());
        base.Execute();
        return !Log.HasLoggedErrors;
    }

    /// <summary>The request the tool reads: the cache settings and, per item, its paths and its quantizer metadata.</summary>
    internal string Request()
    {
        var items = new JsonArray();
        for (int i = 0; i < Models.Length; i++)
        {
            var model = Models[i];
            string id = i.ToString(CultureInfo.InvariantCulture);
            _byId[id] = model;
            var metadata = new JsonObject();
            foreach (var (name, value) in QuantizeItems.QuantizerMetadata(PrepareQuantizeModels.Metadata(model)))
                if (!name.Equals("Calibration", StringComparison.OrdinalIgnoreCase)) metadata[name] = value;
            string samples = model.GetMetadata("_QuantizeCalibrationSamples");
            items.Add(new JsonObject
            {
                ["id"] = id,
                ["model"] = model.GetMetadata("_QuantizeModelFullPath"),
                ["output"] = model.GetMetadata("_QuantizeOutput"),
                ["report"] = model.GetMetadata("_QuantizeReport"),
                ["calibration"] = Empty(model.GetMetadata("_QuantizeCalibrationFolder")),
                ["samples"] = samples.Length == 0 ? null : new JsonArray(samples.Split(';').Select(s => (JsonNode?)s).ToArray()),
                ["metadata"] = metadata,
            });
        }
        var request = new JsonObject
        {
            ["useCache"] = UseCache,
            ["cacheDirectory"] = UseCache ? Empty(CacheDirectory ?? "") : null,
            ["maxParallel"] = MaxParallel,
            ["kernelsReference"] = Empty(KernelsReference ?? ""),
            ["items"] = items,
        };
        return request.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <inheritdoc />
    protected override string GenerateFullPathToTool()
    {
        if (!string.IsNullOrWhiteSpace(DotnetHost)) return DotnetHost!;
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host)) return host;
        foreach (string folder in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(folder, ToolName);
            if (File.Exists(candidate)) return candidate;
        }
        return ToolName;
    }

    /// <inheritdoc />
    protected override string GenerateCommandLineCommands()
    {
        var line = new CommandLineBuilder();
        line.AppendSwitch("exec");
        line.AppendFileNameIfNotNull(Path.GetFullPath(ToolAssembly));
        line.AppendSwitch("msbuild-batch");
        line.AppendFileNameIfNotNull(Path.GetFullPath(RequestFile));
        return line.ToString();
    }

    /// <inheritdoc />
    protected override MessageImportance StandardOutputLoggingImportance => MessageImportance.Low;

    /// <inheritdoc />
    protected override void LogEventsFromTextOutput(string singleLine, MessageImportance messageImportance)
    {
        const string prefix = "quantize-result: ";
        if (singleLine.StartsWith(prefix, StringComparison.Ordinal))
        {
            Report(JsonNode.Parse(singleLine[prefix.Length..])!.AsObject());
            return;
        }
        if (singleLine.Length > 0) lock (_errorOutput) _errorOutput.Add(singleLine);
        Log.LogMessage(MessageImportance.Low, singleLine);
    }

    /// <inheritdoc />
    protected override bool HandleTaskExecutionErrors()
    {
        // The tool exits 1 when an item failed; each failure was already reported with its code.
        var missing = _byId.Keys.Where(id => !_reported.Contains(id)).ToList();
        if (missing.Count == 0) return !Log.HasLoggedErrors;
        string said = _errorOutput.Count == 0 ? "" : " It said: " + string.Join(" ", _errorOutput.TakeLast(5));
        foreach (string id in missing)
            Log.LogError(null, "QNT009", null, ProjectFile, 0, 0, 0, 0,
                $"{_byId[id].ItemSpec}: the quantizer stopped (exit code {ExitCode}) before finishing this model.{said}");
        return false;
    }

    /// <summary>One item's result: a line at normal importance, the ops left float, or its diagnostic.</summary>
    private void Report(JsonObject result)
    {
        string id = (string?)result["id"] ?? "";
        if (!_byId.TryGetValue(id, out var item)) return;
        _reported.Add(id);
        string status = (string?)result["status"] ?? "error";
        if (status == "error")
        {
            Log.LogError(null, (string?)result["code"] ?? "QNT008", null, ProjectFile, 0, 0, 0, 0, (string?)result["message"] ?? "quantizing failed.");
            return;
        }
        Log.LogMessage(MessageImportance.Normal, Describe(item, result));
        if ((string?)result["warning"] is { } warning) Log.LogWarning(null, "QNT010", null, ProjectFile, 0, 0, 0, 0, warning);
        if ((string?)result["leftFloat"] is { } leftFloat)
            Log.LogMessage(null, "QNT005", null, ProjectFile, 0, 0, 0, 0, MessageImportance.Normal, $"{item.ItemSpec}: left float: {leftFloat}.");
    }

    /// <summary>The one line per model: what was made, sizes before and after, accuracy, time or "(cached)".</summary>
    internal static string Describe(ITaskItem item, JsonObject result)
    {
        var inv = CultureInfo.InvariantCulture;
        string text = $"{item.ItemSpec} -> {item.GetMetadata("_QuantizeTargetPath")} ({(string?)result["mode"] ?? item.GetMetadata("Mode")})";
        if ((long?)result["sourceBytes"] is long before && (long?)result["outputBytes"] is long after)
            text += string.Create(inv, $": {Size(before)} -> {Size(after)} ({(before == 0 ? 0 : (double)after / before):P0})");
        if ((double?)result["worstCosine"] is double cosine) text += string.Create(inv, $", cosine {cosine:F4}");
        text += (string?)result["status"] == "cached" ? " (cached)" : string.Create(inv, $", {(double?)result["seconds"] ?? 0:F1} s");
        return text;
    }

    private static string Size(long bytes) => bytes >= 1 << 20
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:F1} MiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:F1} KiB");

    private static string? Empty(string value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
