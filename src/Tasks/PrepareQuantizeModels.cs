using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace Quantize.Build.Tasks;

/// <summary>
/// Works out, for each <c>&lt;QuantizeModel&gt;</c> item, where its output, report and options stamp go, which
/// calibration files it depends on, and which items put the result into the app (copied or embedded). Cheap: it reads
/// no model.
/// </summary>
public sealed class PrepareQuantizeModels : Microsoft.Build.Utilities.Task
{
    /// <summary>The <c>QuantizeModel</c> items.</summary>
    [Required]
    public ITaskItem[] Models { get; set; } = [];

    /// <summary>The project folder: relative paths and default target paths start there.</summary>
    [Required]
    public string ProjectDirectory { get; set; } = "";

    /// <summary>The folder for outputs, reports and stamps (under the intermediate output path, so clean removes them).</summary>
    [Required]
    public string IntermediateDirectory { get; set; } = "";

    /// <summary>The project file, which diagnostics point at.</summary>
    public string? ProjectFile { get; set; }

    /// <summary>
    /// The items with metadata added: <c>_QuantizeOutput</c>, <c>_QuantizeReport</c>, <c>_QuantizeStampFile</c>,
    /// <c>_QuantizeStampText</c>, <c>_QuantizeTargetPath</c>, <c>_QuantizeCalibrationFolder</c>,
    /// <c>_QuantizeCalibrationSamples</c> and <c>_QuantizeCalibrationFiles</c>.
    /// </summary>
    [Output]
    public ITaskItem[] Prepared { get; set; } = [];

    /// <summary>The outputs to copy to the output folder, as <c>None</c> items with <c>Link</c> and copy metadata.</summary>
    [Output]
    public ITaskItem[] CopiedOutputs { get; set; } = [];

    /// <summary>The outputs to embed, as <c>EmbeddedResource</c> items with <c>LogicalName</c>.</summary>
    [Output]
    public ITaskItem[] EmbeddedOutputs { get; set; } = [];

    /// <inheritdoc />
    public override bool Execute()
    {
        var prepared = new List<ITaskItem>();
        var copied = new List<ITaskItem>();
        var embedded = new List<ITaskItem>();
        var targets = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        string intermediate = Path.GetFullPath(Path.Combine(ProjectDirectory, IntermediateDirectory));
        foreach (var model in Models)
        {
            string full = Path.GetFullPath(Path.Combine(ProjectDirectory, model.ItemSpec));
            if (!File.Exists(full))
            {
                Error("QNT001", $"{model.ItemSpec}: the model file does not exist ({full}). Fix the QuantizeModel item's Include, or add the file.");
                continue;
            }
            // No Mode and no QuantizeDefaultMode: weights for a TensorFlow graph (its only 8-bit mode), dynamic for ONNX.
            var item = new TaskItem(model);
            string mode = model.GetMetadata("Mode");
            if (string.IsNullOrWhiteSpace(mode))
            {
                mode = QuantizeItems.DefaultMode(full);
                item.SetMetadata("Mode", mode);
            }
            string outputName = Trimmed(model.GetMetadata("OutputName")) ?? QuantizeItems.DefaultOutputName(full, mode);
            string targetPath = QuantizeItems.TargetPath(full, ProjectDirectory, outputName, model.GetMetadata("Link"), model.GetMetadata("TargetPath"));
            if (!QuantizeItems.IsContained(targetPath))
            {
                Error("QNT006", $"{model.ItemSpec}: the target path '{targetPath}' leaves the output folder; give a relative path without '..' (Link, TargetPath or OutputName).");
                continue;
            }
            if (targets.TryGetValue(targetPath, out var other))
            {
                Error("QNT006", $"{model.ItemSpec}: its output '{targetPath}' is also {other}'s; give one of them another OutputName or Link.");
                continue;
            }
            targets[targetPath] = model.ItemSpec;

            string output = Path.Combine(intermediate, targetPath);
            var metadata = Metadata(item);
            var calibration = CalibrationPaths.Resolve(model.GetMetadata("Calibration"), ProjectDirectory);
            if (calibration is { Folder: null, Samples.Count: 0 })
            {
                Error("QNT007", $"{model.ItemSpec}: the Calibration glob '{model.GetMetadata("Calibration")}' matches no folder; each sample is a folder with one NAME.pb per model input.");
                continue;
            }

            item.SetMetadata("_QuantizeModelFullPath", full);
            item.SetMetadata("_QuantizeOutput", output);
            item.SetMetadata("_QuantizeReport", output + ".report.json");
            item.SetMetadata("_QuantizeStampFile", output + ".options");
            item.SetMetadata("_QuantizeStampText", QuantizeItems.StampText(metadata, QuantizeItems.PackageVersion, [full, .. calibration?.Files ?? []]));
            item.SetMetadata("_QuantizeTargetPath", targetPath);
            item.SetMetadata("_QuantizeCalibrationFolder", calibration?.Folder ?? "");
            item.SetMetadata("_QuantizeCalibrationSamples", string.Join(";", calibration?.Samples ?? []));
            item.SetMetadata("_QuantizeCalibrationFiles", string.Join(";", calibration?.Files ?? []));
            prepared.Add(item);

            if (IsTrue(model.GetMetadata("EmbedAsResource")))
            {
                var resource = new TaskItem(output);
                resource.SetMetadata("LogicalName", Trimmed(model.GetMetadata("LogicalName")) ?? targetPath.Replace('/', '.'));
                resource.SetMetadata("WithCulture", "false");
                resource.SetMetadata("Type", "Non-Resx");
                embedded.Add(resource);
            }
            else
            {
                string copy = Trimmed(model.GetMetadata("CopyToOutputDirectory")) ?? "PreserveNewest";
                if (copy.Equals("Never", StringComparison.OrdinalIgnoreCase) && Trimmed(model.GetMetadata("CopyToPublishDirectory")) is null) continue;
                var file = new TaskItem(output);
                file.SetMetadata("Link", targetPath);
                file.SetMetadata("CopyToOutputDirectory", copy);
                file.SetMetadata("CopyToPublishDirectory", Trimmed(model.GetMetadata("CopyToPublishDirectory")) ?? copy);
                file.SetMetadata("Visible", "false");
                copied.Add(file);
            }
        }
        Prepared = prepared.ToArray();
        CopiedOutputs = copied.ToArray();
        EmbeddedOutputs = embedded.ToArray();
        return !Log.HasLoggedErrors;
    }

    /// <summary>The item's custom metadata (values unescaped).</summary>
    internal static List<KeyValuePair<string, string>> Metadata(ITaskItem item) =>
        item.CloneCustomMetadata().Keys.Cast<string>().Select(name => KeyValuePair.Create(name, item.GetMetadata(name))).ToList();

    private void Error(string code, string message) => Log.LogError(null, code, null, ProjectFile, 0, 0, 0, 0, message);

    private static string? Trimmed(string value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static bool IsTrue(string value) => value.Trim().Equals("true", StringComparison.OrdinalIgnoreCase);
}
