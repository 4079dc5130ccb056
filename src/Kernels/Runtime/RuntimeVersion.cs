using System.Reflection;
using NuGet.Versioning;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime;

/// <summary>
/// This Quantize.Kernels' version, and the check that a model does not need a newer one: the quantizer records in
/// each model's metadata (<see cref="MetadataKey"/>) the lowest Quantize.Kernels version that can run it.
/// </summary>
public static class RuntimeVersion
{
    /// <summary>The ONNX <c>metadata_props</c> key holding the lowest Quantize.Kernels version (SemVer) that runs the model.</summary>
    public const string MetadataKey = "quantize.kernels_min_version";

    /// <summary>This assembly's version (its informational version, without build metadata).</summary>
    public static NuGetVersion Current { get; } = NuGetVersion.Parse(
        (typeof(RuntimeVersion).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0").Split('+')[0]);

    /// <summary>The version <paramref name="model"/> says it needs, or null when it says nothing (or nothing parsable).</summary>
    public static NuGetVersion? Required(OnnxModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        string? text = model.Proto.MetadataProps.FirstOrDefault(p => p.Key == MetadataKey)?.Value;
        return text is not null && NuGetVersion.TryParse(text, out var version) ? version : null;
    }

    /// <summary>Throws when <paramref name="model"/> needs a newer Quantize.Kernels than this one.</summary>
    /// <exception cref="UnsupportedModelException">The model's required version is above <see cref="Current"/>.</exception>
    public static void Check(OnnxModel model)
    {
        if (Required(model) is { } required && required > Current)
            throw new UnsupportedModelException(model.Source,
                $"the model needs Quantize.Kernels {required.ToNormalizedString()} or newer (it says so in '{MetadataKey}'); this is {Current.ToNormalizedString()}. Update the app's Quantize.Kernels package reference.");
    }
}
