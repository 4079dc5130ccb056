using System.Security.Cryptography;
using System.Text;

namespace Quantize.Build.Tasks;

/// <summary>
/// What the tasks know about a <c>&lt;QuantizeModel&gt;</c> item besides the quantizer's options (those belong to the
/// tool, which maps the metadata through Quantize.Core's option table): where the result goes and which metadata only
/// places it.
/// </summary>
public static class QuantizeItems
{
    /// <summary>Metadata that says where the result goes, not what it is: changing it never re-quantizes, and it is not sent to the tool.</summary>
    public static IReadOnlyCollection<string> PlacementMetadata { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        "OutputName", "Link", "TargetPath", "CopyToOutputDirectory", "CopyToPublishDirectory", "EmbedAsResource", "LogicalName", "Visible",
    };

    /// <summary>The metadata the tasks add to prepared items; the prefix keeps them apart from the user's.</summary>
    public const string Prefix = "_Quantize";

    /// <summary>The mode when neither the item nor <c>$(QuantizeDefaultMode)</c> gives one: <c>weights</c> for a TensorFlow <c>.pb</c>, else <c>dynamic</c>.</summary>
    public static string DefaultMode(string modelPath) =>
        string.Equals(Path.GetExtension(modelPath), ".pb", StringComparison.OrdinalIgnoreCase) ? "weights" : "dynamic";

    /// <summary>The default output file name: <c>NAME.MODE.EXT</c> (<c>encoder.dynamic.onnx</c>).</summary>
    public static string DefaultOutputName(string modelPath, string mode)
    {
        string extension = Path.GetExtension(modelPath);
        if (extension.Length == 0) extension = ".onnx";
        string tag = string.IsNullOrWhiteSpace(mode) ? "quantized" : mode.Trim().ToLowerInvariant();
        return Path.GetFileNameWithoutExtension(modelPath) + "." + tag + extension;
    }

    /// <summary>
    /// Where the result goes under the output folder: <paramref name="targetPath"/> or <paramref name="link"/> when set;
    /// else the model's folder relative to the project (when inside it) and <paramref name="outputName"/>.
    /// </summary>
    public static string TargetPath(string modelFullPath, string projectDirectory, string outputName, string? link, string? targetPath)
    {
        string? chosen = !string.IsNullOrWhiteSpace(targetPath) ? targetPath : !string.IsNullOrWhiteSpace(link) ? link : null;
        if (chosen is not null) return Normalize(chosen.Trim());
        string relative = Path.GetRelativePath(projectDirectory, Path.GetDirectoryName(modelFullPath)!);
        bool inside = relative != ".." && !relative.StartsWith(".." + Path.DirectorySeparatorChar, StringComparison.Ordinal)
            && !relative.StartsWith("../", StringComparison.Ordinal) && !Path.IsPathRooted(relative);
        return inside && relative != "." ? Normalize(Path.Combine(relative, outputName)) : outputName;
    }

    /// <summary>Whether a target path stays under the output folder (relative, no <c>..</c> segment).</summary>
    public static bool IsContained(string targetPath) =>
        !Path.IsPathRooted(targetPath) && !targetPath.Split('/', '\\').Any(part => part == "..");

    /// <summary>
    /// The options stamp: a hash of every metadata value that can change the result (all but placement and the tasks'
    /// own), in ordinal order of the names, with the package version and the input files (path, size, time). Written
    /// only when it differs, so its time stamp moves exactly when the options do, or when an input is swapped for an
    /// older file, added or removed (which time stamps alone would miss).
    /// </summary>
    public static string StampText(IEnumerable<KeyValuePair<string, string>> metadata, string packageVersion, IEnumerable<string>? inputFiles = null)
    {
        var text = new StringBuilder();
        text.Append("Quantize.Build ").Append(packageVersion).Append('\n');
        foreach (string file in inputFiles ?? [])
        {
            var info = new FileInfo(file);
            text.Append("input ").Append(Normalize(info.FullName)).Append(' ')
                .Append(info.Exists ? info.Length : -1).Append(' ').Append(info.Exists ? info.LastWriteTimeUtc.Ticks : 0).Append('\n');
        }
        foreach (var (name, value) in QuantizerMetadata(metadata))
            text.Append(name).Append('=').Append(value.Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n');
        return $"Quantize.Build {packageVersion} options sha256={Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))}";
    }

    /// <summary>The metadata the tool gets (and the stamp covers): non-empty, neither placement nor the tasks' own, ordinal order.</summary>
    public static IEnumerable<KeyValuePair<string, string>> QuantizerMetadata(IEnumerable<KeyValuePair<string, string>> metadata) =>
        metadata.Where(p => !string.IsNullOrWhiteSpace(p.Value) && !PlacementMetadata.Contains(p.Key) && !p.Key.StartsWith('_'))
            .OrderBy(p => p.Key, StringComparer.Ordinal);

    /// <summary>The version of these tasks (the package version).</summary>
    public static string PackageVersion { get; } = typeof(QuantizeItems).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
        .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "0.0.0";

    private static string Normalize(string path) => path.Replace('\\', '/');
}
